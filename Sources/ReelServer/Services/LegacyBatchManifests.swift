import Foundation
import Logging
import ReelCore
import ReelStore

/// The manifest files of batches taken before manifests moved into the job store: `<data-dir>/batches/<id>.json`,
/// each written by the node that took the batch.
///
/// At startup every one the store lacks is added to it (`importAll`), so a node's old batches stay readable, now
/// from every node that shares its store. The files are left where they are, not renamed or removed: an older `reel`
/// pointed at this data directory still finds them, and importing them again adds nothing (the store keeps the
/// batch it has).
struct LegacyBatchManifests: Sendable {
    let directory: URL

    init(dataDirectory: String) {
        directory = URL(fileURLWithPath: dataDirectory).appendingPathComponent("batches")
    }

    /// Adds to `store` the batch of every manifest file it does not hold yet, and returns how many it added. A file
    /// that does not decode as a manifest of its own name is logged and skipped.
    func importAll(into store: any JobStore, logger: Logger) async throws -> Int {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return 0 }
        var added = 0
        for name in names.sorted() where name.hasSuffix(".json") {
            let url = directory.appendingPathComponent(name)
            guard let manifest = Self.decode(url), manifest.id + ".json" == name else {
                logger.warning("\(url.path) is not a batch manifest; it was left out of the job store")
                continue
            }
            if try await store.importBatch(manifest) { added += 1 }
        }
        return added
    }

    /// A manifest as the old files hold it: dates in seconds since 1970.
    static func decode(_ url: URL) -> BatchManifest? {
        guard let data = try? Data(contentsOf: url) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return try? decoder.decode(BatchManifest.self, from: data)
    }

}
