import Foundation
import ReelCore

/// A finished video's thumbnail: its first frame as a JPEG, made once on first request and kept beside the video
/// as `thumbnail.jpg` (deleting the video deletes it too).
///
/// The engine's Python decodes the frame with PyAV and writes it with Pillow, both already engine dependencies, so
/// nothing is added to the engine or the server and no job pays for thumbnails it never shows. A job that kept its
/// PNG frames serves frame 1 instead, with no decoding at all.
enum Thumbnail {
    static let filename = "thumbnail.jpg"

    /// How long decoding one frame may take before it is given up.
    static let timeout: Duration = .seconds(60)

    private static let script = """
        import av, sys
        with av.open(sys.argv[1]) as container:
            frame = next(container.decode(video=0))
            frame.to_image().convert("RGB").save(sys.argv[2], format="JPEG", quality=90)
        """

    /// The path of the video's thumbnail in `directory`, made from `video` first if it is not there yet.
    static func make(video: String, directory: String, python: String) async throws -> String {
        let path = directory + "/" + filename
        if FileManager.default.fileExists(atPath: path) { return path }
        // Written beside and renamed, so a concurrent request never serves half a file.
        let partial = directory + "/.thumbnail-\(UUID().uuidString).jpg"
        defer { try? FileManager.default.removeItem(atPath: partial) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c", script, video, partial]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        let errors = Pipe()
        process.standardError = errors
        let watchdog = Task {
            try? await Task.sleep(for: timeout)
            if !Task.isCancelled && process.isRunning { process.terminate() }
        }
        defer { watchdog.cancel() }
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
            }
        }
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard status == 0, FileManager.default.fileExists(atPath: partial) else {
            throw ThumbnailError(message: "decoding the first frame failed (\(status)): \(stderr.suffix(2000))")
        }
        if rename(partial, path) != 0 {
            throw ThumbnailError(message: "keeping the thumbnail failed: errno \(errno)")
        }
        return path
    }

    struct ThumbnailError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }
}
