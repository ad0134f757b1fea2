import Foundation
import GRDB
import ReelCore

/// A row of table `job_event`. `sequence` is the table's autoincremented rowid: it only ever grows.
struct JobEventRecord: Equatable {
    var sequence: Int64?
    var jobID: String
    var at: Date
    var kind: String
    var message: String?
}

extension JobEventRecord {
    init(jobID: String, event: PendingEvent, at: Date) {
        self.init(sequence: nil, jobID: jobID, at: at.storedPrecision, kind: event.kind, message: event.message)
    }

    var event: JobEvent {
        JobEvent(jobID: jobID, sequence: sequence ?? 0, at: at, kind: kind, message: message)
    }
}

extension JobEventRecord: Codable {
    enum CodingKeys: String, CodingKey {
        case sequence
        case jobID = "job_id"
        case at, kind, message
    }
}

extension JobEventRecord: FetchableRecord, MutablePersistableRecord {
    static let databaseTableName = "job_event"

    enum Columns {
        static let sequence = Column(CodingKeys.sequence)
        static let jobID = Column(CodingKeys.jobID)
        static let at = Column(CodingKeys.at)
        static let kind = Column(CodingKeys.kind)
        static let message = Column(CodingKeys.message)
    }

    static func databaseDateEncodingStrategy(for column: String) -> DatabaseDateEncodingStrategy {
        .timeIntervalSince1970
    }

    static func databaseDateDecodingStrategy(for column: String) -> DatabaseDateDecodingStrategy {
        .timeIntervalSince1970
    }

    mutating func didInsert(_ inserted: InsertionSuccess) {
        sequence = inserted.rowID
    }
}
