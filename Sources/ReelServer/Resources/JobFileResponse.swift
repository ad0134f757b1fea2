import Foundation
import HTTPTypes
import Hummingbird
import ReelCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A job's output file as a response: `Content-Type`, `X-Content-Type-Options: nosniff` and an attachment
/// `Content-Disposition` on every one.
///
/// The path comes from the job's stored outputs, never from a request; even so, the file must be a regular file
/// (not a symbolic link, whose target could be anywhere) whose real path lies inside the job's output directory,
/// or it is answered as missing. Someone able to write into the outputs directory could still swap the file
/// between the check and the open; nobody else can.
enum JobFileResponse {
    static func make(
        path: String, directory: String, contentType: String, filename: String, fileIO: FileIO,
        context: some RequestContext
    ) async throws -> Response {
        guard isRegularFile(path, inside: directory) else {
            throw ReelError(.notFound, "the file \(filename) is no longer on the server")
        }
        let body = try await fileIO.loadFile(path: path, context: context)
        var headers: HTTPFields = [
            .contentType: contentType,
            .contentDisposition: "attachment; filename=\"\(filename)\"",
            .xContentTypeOptions: "nosniff",
        ]
        if let length = body.contentLength { headers[.contentLength] = String(length) }
        return Response(status: .ok, headers: headers, body: body)
    }

    /// Whether `path` itself is a regular file (checked with lstat, so a link is not followed) whose real path
    /// (every link on the way resolved) is inside `directory`'s real path.
    static func isRegularFile(_ path: String, inside directory: String) -> Bool {
        var status = stat()
        guard lstat(path, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else { return false }
        guard let real = realPath(path), let root = realPath(directory) else { return false }
        return real.hasPrefix(root.hasSuffix("/") ? root : root + "/")
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
