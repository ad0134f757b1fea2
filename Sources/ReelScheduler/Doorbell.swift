import Synchronization

/// Wakes idle slots when work arrives, so a new job starts without waiting for the next poll.
final class Doorbell: Sendable {
    private let rings = Atomic<Int>(0)

    func ring() { rings.add(1, ordering: .relaxed) }

    /// Returns when the bell rings, `stop()` says so, or `limit` passes, whichever is first.
    func wait(upTo limit: Duration, stop: () -> Bool) async {
        let start = rings.load(ordering: .relaxed)
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline && rings.load(ordering: .relaxed) == start && !stop() {
            try? await Task.sleep(for: .milliseconds(25))
            if Task.isCancelled { return }
        }
    }
}

/// Shutdown state every slot runner reads: whether to stop claiming, and when running jobs must stop. The node has one;
/// each layout of slots has its own, begun by the node's shutdown or by a change of layout.
final class ShutdownState: Sendable {
    private struct State {
        var stopping = false
        var deadline: ContinuousClock.Instant?
    }
    private let state = Mutex(State())

    var stopping: Bool { state.withLock { $0.stopping } }

    var graceExpired: Bool {
        state.withLock { state in
            guard let deadline = state.deadline else { return false }
            return ContinuousClock.now >= deadline
        }
    }

    /// Stops claiming. With a grace, running jobs are stopped when it ends; with none (a layout change), they run
    /// to their end. A later call may set or shorten the deadline, never lengthen it.
    func begin(grace: Duration?) {
        state.withLock { state in
            state.stopping = true
            guard let grace else { return }
            let deadline = ContinuousClock.now + grace
            if state.deadline.map({ deadline < $0 }) ?? true { state.deadline = deadline }
        }
    }
}
