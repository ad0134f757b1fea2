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

/// Shutdown state every slot runner reads: whether to stop claiming, and when running jobs must stop.
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

    func begin(grace: Duration) {
        state.withLock { state in
            guard !state.stopping else { return }
            state.stopping = true
            state.deadline = ContinuousClock.now + grace
        }
    }
}
