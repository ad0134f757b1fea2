import ReelAPI
import ReelCore

extension JobEventResource {
    init(_ event: JobEvent) {
        self.init(job: event.jobID, sequence: event.sequence, at: event.at, kind: event.kind, message: event.message)
    }
}
