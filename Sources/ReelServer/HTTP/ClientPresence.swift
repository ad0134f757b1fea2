import Synchronization

/// Whether the client of the current connection is still there, for a response that could otherwise go on long
/// after it left: an event stream notices a closed connection at once instead of at its next write (a heartbeat
/// up to 15 s away), and frees its subscription, buffers and tasks then.
///
/// `ConnectionGuard` marks it gone when the client closes its side (a FIN) or the connection drops;
/// `ReelHTTPChannel` binds it as `current` for the requests of its connection.
final class ClientPresence: Sendable {
    @TaskLocal static var current: ClientPresence?

    private struct State {
        var gone = false
        var nextToken = 0
        var callbacks: [Int: @Sendable () -> Void] = [:]
    }

    private let state = Mutex(State())

    init() {}

    var isGone: Bool { state.withLock { $0.gone } }

    /// Calls `callback` once when the client goes away (at once if it has); returns a token for `cancel`.
    @discardableResult
    func onGone(_ callback: @escaping @Sendable () -> Void) -> Int {
        let token: Int? = state.withLock { state in
            guard !state.gone else { return nil }
            let token = state.nextToken
            state.nextToken += 1
            state.callbacks[token] = callback
            return token
        }
        guard let token else {
            callback()
            return -1
        }
        return token
    }

    func cancel(_ token: Int) {
        _ = state.withLock { $0.callbacks.removeValue(forKey: token) }
    }

    func markGone() {
        let callbacks = state.withLock { state in
            state.gone = true
            defer { state.callbacks = [:] }
            return Array(state.callbacks.values)
        }
        for callback in callbacks { callback() }
    }
}
