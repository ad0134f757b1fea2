import Foundation
import ReelCore
import ReelStore

/// One entry of a job's stored event log, as `GET /v1/jobs/{id}/events` shows it.
struct JobEventResource: Encodable {
    var job: String
    var sequence: Int64
    var at: Date
    var kind: String
    var message: String?

    init(_ event: JobEvent) {
        job = event.jobID
        sequence = event.sequence
        at = event.at
        kind = event.kind
        message = event.message
    }

    enum CodingKeys: String, CodingKey { case job, sequence, at, kind, message }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(job, forKey: .job)
        try container.encode(sequence, forKey: .sequence)
        try container.encode(at, forKey: .at)
        try container.encode(kind, forKey: .kind)
        try container.encode(message, forKey: .message)
    }
}
