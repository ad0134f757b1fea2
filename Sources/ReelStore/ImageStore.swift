import Crypto
import Foundation
import ReelCore

/// The images jobs start from, stored once each under the data directory by the SHA-256 of their bytes:
/// `images/<first two hex digits>/<sha256>.<png|jpg|webp>`. The same picture uploaded twice is one file; a file is
/// written to a temporary name and renamed, so a reader never sees half an image.
///
/// These files are what a node's workers read. On a server they are this node's copies: the job store keeps every
/// image a job names (`JobStore.putImage`), and a node that lacks one copies it from there (`ImageLibrary`).
///
/// Retention: an image is kept while any job that names it is kept, and an image no job names is removed once it
/// has gone unused for `unusedRetention` (`sweep`; uploading it again or naming it in a submission uses it), so an
/// upload has a day to be used. Removing jobs is the store's
/// business; `sweep` is told which images are still named.
public struct ImageStore: Sendable {
    public let directory: URL
    public var limits: ImageLimits
    /// How long an image no job names is kept.
    public var unusedRetention: TimeInterval

    public init(directory: URL, limits: ImageLimits = .standard, unusedRetention: TimeInterval = 24 * 3600) {
        self.directory = directory
        self.limits = limits
        self.unusedRetention = unusedRetention
    }

    /// The image store of a data directory.
    public init(dataDirectory: String, limits: ImageLimits = .standard) {
        self.init(directory: URL(fileURLWithPath: dataDirectory).appendingPathComponent("images"), limits: limits)
    }

    /// Checks `bytes` (`ImageHeader`: format, whole file, size limits) and stores them unless already stored.
    /// The error names `field`.
    @discardableResult
    public func put(_ bytes: some Collection<UInt8>, field: String = "image") throws(ReelError) -> ImageReference {
        try store(bytes, field: field).reference
    }

    /// `put`, and whether the image is new here (false: the same bytes were stored before).
    public func store(
        _ bytes: some Collection<UInt8>, field: String = "image"
    ) throws(ReelError) -> (reference: ImageReference, created: Bool) {
        let data = Data(bytes)
        let header = try ImageHeader.read(data, field: field, limits: limits)
        let reference = ImageReference(
            sha256: SHA256.hash(data: data).hexDigits, format: header.format, width: header.width,
            height: header.height)
        let url = self.url(for: reference)
        if FileManager.default.fileExists(atPath: url.path) {
            touch(url)
            return (reference, false)
        }
        do {
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(UUID().uuidString).part")
            try data.write(to: temporary)
            if rename(temporary.path, url.path) != 0 {
                try? FileManager.default.removeItem(at: temporary)
                throw CocoaError(.fileWriteUnknown)
            }
        } catch {
            throw ReelError(
                .storageFull, field: field, "the image could not be stored under \(directory.path): \(error)")
        }
        return (reference, true)
    }

    /// Reads and stores the image file at `path` (a CLI's `--image`, a CSV's `image` column).
    @discardableResult
    public func put(file path: String, field: String = "image") throws(ReelError) -> ImageReference {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        guard let size = (attributes?[.size] as? NSNumber)?.intValue,
            attributes?[.type] as? FileAttributeType == .typeRegular
        else {
            throw .invalid(field, "\(path.quotedForMessage(limit: 400)) is not a readable file")
        }
        guard size <= limits.maxBytes else {
            throw ReelError(
                .payloadTooLarge, field: field,
                "\(path.quotedForMessage(limit: 400)) is \(size) bytes; images of at most \(limits.maxBytes) are accepted"
            )
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .invalid(field, "\(path.quotedForMessage(limit: 400)) is not a readable file")
        }
        return try put(data, field: field)
    }

    /// The stored image an id names (`img_<sha256>`); not found when no such image is stored.
    public func reference(id: String, field: String = "image") throws(ReelError) -> ImageReference {
        guard let sha256 = ImageReference.sha256(inID: id) else {
            throw .invalid(field, "\(id.quotedForMessage(limit: 80)) is not an image id (img_ and 64 hex digits)")
        }
        for format in ImageHeader.Format.allCases {
            let url = file(sha256: sha256, format: format)
            guard let data = FileManager.default.contents(atPath: url.path) else { continue }
            let header = try ImageHeader.read(data, field: field, limits: ImageLimits(maxBytes: .max, maxPixels: .max))
            touch(url)
            return ImageReference(sha256: sha256, format: header.format, width: header.width, height: header.height)
        }
        throw ReelError(.notFound, field: field, "no image \(id) is stored; upload it to POST /v1/images first")
    }

    /// An image as an API request names it: the id of a stored image (`img_…`), or a `data:` URL (base64) whose
    /// image is stored now. Paths are never read: a server's files are not its clients' to name.
    public func resolve(_ name: String, field: String) throws(ReelError) -> ImageReference {
        let text = name.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.hasPrefix(ImageReference.idPrefix) {
            do throws(ReelError) {
                return try reference(id: text, field: field)
            } catch {
                // A submission naming a missing image is a bad request, not a missing URL.
                throw error.code == .notFound ? .invalid(field, error.message) : error
            }
        }
        if text.lowercased().hasPrefix("data:") {
            guard let comma = text.firstIndex(of: ","),
                text[..<comma].lowercased().hasSuffix(";base64")
            else {
                throw .invalid(field, "a data: URL for \(field) must be base64 (data:image/png;base64,…)")
            }
            let payload = text[text.index(after: comma)...]
            // Base64 is 4 characters for 3 bytes: a longer payload is over the limit before it is decoded.
            guard payload.utf8.count / 4 * 3 <= limits.maxBytes + 3 else {
                throw ReelError(
                    .payloadTooLarge, field: field, "the image is over the limit of \(limits.maxBytes) bytes")
            }
            guard let data = Data(base64Encoded: String(payload)) else {
                throw .invalid(field, "the data: URL for \(field) is not valid base64")
            }
            return try put(data, field: field)
        }
        throw .invalid(
            field,
            "\(text.quotedForMessage(limit: 60)) is neither an image id (img_…, from POST /v1/images) nor a data: URL")
    }

    public func url(for reference: ImageReference) -> URL { file(sha256: reference.sha256, format: reference.format) }

    /// Whether an image of this SHA-256 is stored here, in any format.
    public func holds(sha256: String) -> Bool {
        ImageHeader.Format.allCases.contains {
            FileManager.default.fileExists(atPath: file(sha256: sha256, format: $0).path)
        }
    }

    private func file(sha256: String, format: ImageHeader.Format) -> URL {
        directory.appendingPathComponent(String(sha256.prefix(2))).appendingPathComponent(
            "\(sha256).\(format.fileExtension)")
    }

    /// Marks an image as just used, so a sweep racing a submission that names it cannot remove it.
    private func touch(_ url: URL) {
        try? FileManager.default.setAttributes([.modificationDate: Date()], ofItemAtPath: url.path)
    }

    /// Removes the images unused for `unusedRetention` (stored, uploaded again or named by a submission) that no
    /// job names; returns how many it removed.
    @discardableResult
    public func sweep(keeping named: Set<String>, now: Date = Date()) -> Int {
        let fileManager = FileManager.default
        guard let folders = try? fileManager.contentsOfDirectory(atPath: directory.path) else { return 0 }
        var removed = 0
        for folder in folders {
            let path = directory.appendingPathComponent(folder).path
            for name in (try? fileManager.contentsOfDirectory(atPath: path)) ?? [] {
                let sha256 = String(name.prefix { $0 != "." })
                guard !named.contains(sha256) else { continue }
                let file = path + "/" + name
                let modified = (try? fileManager.attributesOfItem(atPath: file))?[.modificationDate] as? Date
                if let modified, now.timeIntervalSince(modified) > unusedRetention {
                    if (try? fileManager.removeItem(atPath: file)) != nil { removed += 1 }
                }
            }
        }
        return removed
    }
}
