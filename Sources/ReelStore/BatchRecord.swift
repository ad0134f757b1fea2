import Foundation
import GRDB
import ReelCore

/// A row of table `batch`: a `BatchManifest`, its accepted and rejected rows as JSON text columns, its date as REAL
/// seconds since 1970 like the job table's.
struct BatchRecord: Equatable {
    var id: String
    var createdAt: Date
    var source: String
    var owner: String?
    var accepted: [BatchManifest.Accepted]
    var rejected: [BatchManifest.Rejected]
}

extension BatchRecord {
    init(_ manifest: BatchManifest) {
        self.init(
            id: manifest.id, createdAt: manifest.createdAt.storedPrecision, source: manifest.source,
            owner: manifest.owner, accepted: manifest.accepted, rejected: manifest.rejected)
    }

    var manifest: BatchManifest {
        BatchManifest(
            id: id, createdAt: createdAt, source: source, accepted: accepted, rejected: rejected, owner: owner)
    }
}

extension BatchRecord: Codable {
    enum CodingKeys: String, CodingKey {
        case id, source, owner, accepted, rejected
        case createdAt = "created_at"
    }
}

extension BatchRecord: FetchableRecord, PersistableRecord {
    static let databaseTableName = "batch"

    enum Columns {
        static let id = Column(CodingKeys.id)
        static let createdAt = Column(CodingKeys.createdAt)
    }

    static func databaseDateEncodingStrategy(for column: String) -> DatabaseDateEncodingStrategy {
        .timeIntervalSince1970
    }

    static func databaseDateDecodingStrategy(for column: String) -> DatabaseDateDecodingStrategy {
        .timeIntervalSince1970
    }
}
