import Foundation
import ReelCore
import ReelStore
import Synchronization

/// Something that happened to a job, as clients see it on the event stream.
public struct ServerEvent: Sendable, Equatable, Codable {
    /// queued, started, progress, succeeded, failed, cancelled, requeued.
    public var kind: String
    public var job: String
    public var state: JobState
    public var attempt: Int?
    public var progress: JobProgress?
    public var slot: String?
    public var errorCode: String?
    public var message: String?
    public var at: Date

    public init(
        kind: String, job: String, state: JobState, attempt: Int? = nil, progress: JobProgress? = nil,
        slot: String? = nil, errorCode: String? = nil, message: String? = nil, at: Date = Date()
    ) {
        self.kind = kind
        self.job = job
        self.state = state
        self.attempt = attempt
        self.progress = progress
        self.slot = slot
        self.errorCode = errorCode
        self.message = message
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case kind, job, state, attempt, progress, slot, message, at
        case errorCode = "error_code"
    }
}

/// Fans events out to every current subscriber. A slow subscriber loses its oldest events, never blocks others.
public final class EventBus: Sendable {
    private let subscribers = Mutex<[UUID: AsyncStream<ServerEvent>.Continuation]>([:])

    public init() {}

    public func publish(_ event: ServerEvent) {
        let continuations = subscribers.withLock { Array($0.values) }
        for continuation in continuations { continuation.yield(event) }
    }

    /// A stream of every event published from now on; it ends when the subscriber stops iterating.
    public func subscribe(bufferSize: Int = 1024) -> AsyncStream<ServerEvent> {
        let (stream, continuation) = AsyncStream<ServerEvent>.makeStream(bufferingPolicy: .bufferingNewest(bufferSize))
        let id = UUID()
        subscribers.withLock { $0[id] = continuation }
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.removeValue(forKey: id) }
        }
        return stream
    }

    public var subscriberCount: Int { subscribers.withLock { $0.count } }
}
