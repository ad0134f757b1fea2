import Foundation

/// What a batch was: which job each row became and which rows were rejected, kept in the job store beside its jobs.
///
/// The jobs themselves are tagged with the batch id; the manifest maps rows to them. A store adds a manifest in the
/// same transaction as its jobs (`JobStore.enqueueBatch`), so neither exists without the other.
public struct BatchManifest: Sendable, Codable, Equatable {
    /// A row that became a job.
    public struct Accepted: Sendable, Codable, Equatable {
        public var row: Int
        public var job: String

        public init(row: Int, job: String) {
            self.row = row
            self.job = job
        }
    }

    /// A row that was refused, with the column at fault (when one is) and why.
    public struct Rejected: Sendable, Codable, Equatable {
        public var row: Int
        public var column: String?
        public var message: String

        public init(row: Int, column: String?, message: String) {
            self.row = row
            self.column = column
            self.message = message
        }
    }

    public var id: String
    public var createdAt: Date
    /// "csv" or "json".
    public var source: String
    public var accepted: [Accepted]
    public var rejected: [Rejected]
    /// The tenant (an API key's id) that submitted the batch; nil on a server without keys.
    public var owner: String?

    public init(
        id: String = BatchManifest.makeID(), createdAt: Date, source: String, accepted: [Accepted],
        rejected: [Rejected], owner: String? = nil
    ) {
        self.id = id
        self.createdAt = createdAt
        self.source = source
        self.accepted = accepted
        self.rejected = rejected
        self.owner = owner
    }

    /// The keys of the manifest files older versions wrote, and of the stores' JSON.
    enum CodingKeys: String, CodingKey {
        case id, source, accepted, rejected, owner
        case createdAt = "created_at"
    }

    /// A batch id: letters, digits and underscores only, so it is safe in a path or a URL.
    public static func makeID() -> String {
        "batch_" + String(UInt64(Date().timeIntervalSince1970 * 1000), radix: 36)
            + String(UInt64.random(in: 0..<(1 << 40)), radix: 36)
    }
}
