import Crypto
import Foundation
import ReelCore

/// The images of a server, as every node sharing its job store sees them.
///
/// Each image is kept in two places: in the job store (`JobStore.putImage`), which every node that reaches the
/// store reads (on a cluster, PostgreSQL's `image` table), and as a file in this node's `ImageStore`
/// (`<data-dir>/images/`), the copy its workers read. The rules:
///
/// - An upload is checked (`ImageHeader`), written here, and put into the store (`storeImage`).
/// - Before a job is queued, every image it names is in the store (`share`): marked used there, or put there from
///   this node's file (a form's file part, a `data:` URL, an image stored before the store kept images).
/// - A node asked for an image it has no file of (an id in a submission or `GET /v1/images/{id}`, a job it claimed
///   that another node took) copies it from the store into its `ImageStore` first (`resolve`, `reference`,
///   `ensureLocal`). The bytes are checked against their SHA-256 before they are written.
public struct ImageLibrary: Sendable {
    /// This node's files.
    public let files: ImageStore
    /// Where every node reads images from.
    public let store: any JobStore

    public init(files: ImageStore, store: any JobStore) {
        self.files = files
        self.store = store
    }

    /// Stores uploaded bytes: checks them (the error names `field`), writes this node's file and puts them into the
    /// job store. `created` is false when the store held the image already (the same bytes were uploaded before, to
    /// any node).
    public func storeImage(
        _ bytes: some Collection<UInt8>, field: String
    ) async throws -> (reference: ImageReference, created: Bool) {
        let bytes = Array(bytes)
        let reference = try files.store(bytes, field: field).reference
        return (reference, try await store.putImage(reference, bytes: bytes, now: Date()))
    }

    /// The stored image an id names (`ImageStore.reference(id:field:)`), copied from the job store first when this
    /// node has no file of it.
    public func reference(id: String, field: String) async throws -> ImageReference {
        if let sha256 = ImageReference.sha256(inID: id) { try await fetch(sha256: sha256) }
        return try files.reference(id: id, field: field)
    }

    /// An image as a submission names it (`ImageStore.resolve(_:field:)`: an id, or a `data:` URL stored now), an
    /// id being copied from the job store first when this node has no file of it. `share` it before its job is
    /// queued.
    public func resolve(_ name: String, field: String) async throws -> ImageReference {
        try await prefetch([name])
        return try files.resolve(name, field: field)
    }

    /// Copies from the job store the images these names (as a batch's rows give them) are ids of that this node has
    /// no file of, so that the rows can be checked without waiting on the store each (`BatchValidation`). A name
    /// that is not an id, or an id the store does not know, is left to the check, which says what is wrong with it.
    public func prefetch(_ names: some Sequence<String>) async throws {
        var seen = Set<String>()
        for name in names {
            let text = name.trimmingCharacters(in: .whitespacesAndNewlines)
            guard let sha256 = ImageReference.sha256(inID: text), seen.insert(sha256).inserted else { continue }
            try await fetch(sha256: sha256)
        }
    }

    /// Makes sure every node can read the image a job about to be queued names: marks it used in the job store (so
    /// that no sweep removes it meanwhile), or puts it there from this node's file when the store lacks it. The
    /// error names `field`.
    public func share(_ reference: ImageReference, field: String) async throws {
        if try await store.markImageUsed(sha256: reference.sha256, now: Date()) { return }
        guard let data = FileManager.default.contents(atPath: files.url(for: reference).path) else {
            throw ReelError.invalid(field, "image \(reference.id) is no longer stored; upload it again")
        }
        _ = try await store.putImage(reference, bytes: Array(data), now: Date())
    }

    /// `share` for each image `spec` names.
    public func share(imagesOf spec: GenerationSpec) async throws {
        if let image = spec.image { try await share(image, field: "image") }
        if let image = spec.lastImage { try await share(image, field: "last_image") }
    }

    /// Makes sure this node has the file of `reference`, as the scheduler does before it sends a job to a worker:
    /// true when it had it or has now copied it from the job store; false when the store has no such image either.
    public func ensureLocal(_ reference: ImageReference) async throws -> Bool {
        if FileManager.default.fileExists(atPath: files.url(for: reference).path) { return true }
        try await fetch(sha256: reference.sha256)
        return FileManager.default.fileExists(atPath: files.url(for: reference).path)
    }

    /// Copies the image of `sha256` from the job store into this node's files unless they hold it already; does
    /// nothing when the store has no such image either.
    func fetch(sha256: String) async throws {
        guard !files.holds(sha256: sha256), let bytes = try await store.imageBytes(sha256: sha256) else { return }
        let actual = SHA256.hash(data: bytes).hexDigits
        guard actual == sha256 else {
            throw JobStoreError(.corrupt, "the job store's image img_\(sha256) holds bytes whose SHA-256 is \(actual)")
        }
        // The image was checked when it was first stored, perhaps by a node with other limits: this node's do not
        // apply to a copy.
        var unlimited = files
        unlimited.limits = ImageLimits(maxBytes: .max, maxPixels: .max)
        _ = try unlimited.store(bytes, field: "image")
    }
}
