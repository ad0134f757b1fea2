import Foundation
import Synchronization

/// Wakes whoever listens when work arrives (an enqueue, a requeue, an expired lease, a shutdown), so an idle slot
/// claims at once instead of at its next safety-net check.
final class Doorbell: Sendable {
    private let listeners = Mutex<[UUID: AsyncStream<Void>.Continuation]>([:])

    func ring() {
        for listener in listeners.withLock({ Array($0.values) }) { listener.yield() }
    }

    /// Every ring from now on, while the stream is iterated; rings that come faster than they are read merge.
    func rings() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = UUID()
        listeners.withLock { $0[id] = continuation }
        continuation.onTermination = { [weak self] _ in _ = self?.listeners.withLock { $0.removeValue(forKey: id) } }
        return stream
    }

    /// Returns when the bell rings or `limit` passes, whichever is first.
    func wait<C: Clock>(upTo limit: Duration, clock: C) async where C.Duration == Duration {
        let rings = rings()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await clock.sleep(for: limit) }
            group.addTask {
                for await _ in rings { return }
            }
            await group.next()
            group.cancelAll()
        }
    }
}

/// Shutdown state every slot follows: whether to stop claiming, and how long running jobs may go on. The node has
/// one; each layout of slots has its own, begun by the node's shutdown or by a change of layout.
final class ShutdownState: Sendable {
    private struct State {
        var stopping = false
        var deadline: ContinuousClock.Instant?
        var listeners: [UUID: AsyncStream<Duration?>.Continuation] = [:]
    }
    private let state = Mutex(State())

    var stopping: Bool { state.withLock { $0.stopping } }

    /// Stops claiming. With a grace, running jobs are stopped when it ends; with none (a layout change), they run
    /// to their end. A later call may set or shorten the deadline, never lengthen it.
    func begin(grace: Duration?) {
        let listeners = state.withLock { state in
            state.stopping = true
            if let grace {
                let deadline = ContinuousClock.now + grace
                if state.deadline.map({ deadline < $0 }) ?? true { state.deadline = deadline }
            }
            return Array(state.listeners.values)
        }
        for listener in listeners { listener.yield(grace) }
    }

    /// Each `begin` from now on, with its grace; one at once, with the grace left, if the stop has begun already.
    func changes() -> AsyncStream<Duration?> {
        let (stream, continuation) = AsyncStream<Duration?>.makeStream()
        let id = UUID()
        let begun: Duration?? = state.withLock { state in
            state.listeners[id] = continuation
            guard state.stopping else { return nil }
            return .some(state.deadline.map { max(.zero, $0 - ContinuousClock.now) })
        }
        if let begun { continuation.yield(begun) }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.listeners.removeValue(forKey: id) }
        }
        return stream
    }
}
