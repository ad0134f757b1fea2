import Foundation

/// What a batch was: which job each row became and which rows were rejected, kept beside the jobs.
///
/// The jobs themselves live in the job store (tagged with the batch id); the manifest only maps rows to them,
/// and is written after the jobs are safely queued.
public struct BatchManifest: Sendable, Codable, Equatable {
    public struct Accepted: Sendable, Codable, Equatable {
        public var row: Int
        public var job: String
    }

    public struct Rejected: Sendable, Codable, Equatable {
        public var row: Int
        public var column: String?
        public var message: String
    }

    public var id: String
    public var createdAt: Date
    /// "csv" or "json".
    public var source: String
    public var accepted: [Accepted]
    public var rejected: [Rejected]
    /// The tenant (an API key's id) that submitted the batch; nil on a server without keys.
    public var owner: String?

    enum CodingKeys: String, CodingKey {
        case id, source, accepted, rejected, owner
        case createdAt = "created_at"
    }

    static func makeID() -> String {
        "batch_" + String(UInt64(Date().timeIntervalSince1970 * 1000), radix: 36)
            + String(UInt64.random(in: 0..<(1 << 40)), radix: 36)
    }
}

/// Reads and writes manifests under `<data-dir>/batches/`, by batch id only.
struct BatchManifestStore: Sendable {
    let directory: URL

    init(dataDirectory: String) {
        directory = URL(fileURLWithPath: dataDirectory).appendingPathComponent("batches")
    }

    func save(_ manifest: BatchManifest) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        try encoder.encode(manifest).write(to: url(manifest.id), options: .atomic)
    }

    func load(_ id: String) -> BatchManifest? {
        // Ids are ours: letters, digits and underscores only, so no user text ever forms a path.
        guard !id.isEmpty, id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }),
            let data = try? Data(contentsOf: url(id))
        else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return try? decoder.decode(BatchManifest.self, from: data)
    }

    private func url(_ id: String) -> URL { directory.appendingPathComponent(id + ".json") }
}
