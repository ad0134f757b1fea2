import Foundation
import ReelCore
import Synchronization

/// Fans job updates out to every current subscriber. A slow subscriber loses its oldest updates and never blocks
/// others; a subscriber that stops iterating is forgotten with everything its stream held.
public final class UpdateFeed: Sendable {
    private let subscribers = Mutex<[UUID: AsyncStream<JobUpdate>.Continuation]>([:])

    public init() {}

    public func publish(_ update: JobUpdate) {
        for continuation in subscribers.withLock({ Array($0.values) }) { continuation.yield(update) }
    }

    public func publish(_ updates: [JobUpdate]) {
        guard !updates.isEmpty else { return }
        let continuations = subscribers.withLock { Array($0.values) }
        for update in updates {
            for continuation in continuations { continuation.yield(update) }
        }
    }

    /// Every update published from now on; the stream ends when its subscriber stops iterating.
    public func subscribe(bufferSize: Int = 1024) -> AsyncStream<JobUpdate> {
        let (stream, continuation) = AsyncStream<JobUpdate>.makeStream(bufferingPolicy: .bufferingNewest(bufferSize))
        let id = UUID()
        subscribers.withLock { $0[id] = continuation }
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.removeValue(forKey: id) }
        }
        return stream
    }

    public var subscriberCount: Int { subscribers.withLock { $0.count } }
}
