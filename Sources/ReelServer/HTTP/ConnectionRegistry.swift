import NIOCore
import Synchronization

/// Every open connection of the server, and whether each is idle (waiting for a request head), so that the number
/// open stays under `limit`: a connection that comes when the server is full closes the one that has been idle
/// longest, and only when none is idle is the newcomer itself refused (with a 503).
///
/// The limit is set below the process's descriptor limit (`DescriptorLimit`), so accepting never fails for want
/// of a descriptor, and a health check always gets in while idle or trickling clients hold the others.
final class ConnectionRegistry: Sendable {
    let limit: Int

    /// What became of a new connection.
    struct Ticket: Sendable {
        var id: Int
        /// False when the server was full of busy connections: answer 503 and close.
        var admitted: Bool
    }

    private struct Entry {
        var channel: any Channel
        /// When it last became idle; nil while a request is being read or answered.
        var idleSince: ContinuousClock.Instant?
    }

    private struct State {
        var entries: [Int: Entry] = [:]
        var nextID = 0
        var evicted = 0
        var refused = 0
    }

    private let state = Mutex(State())

    init(limit: Int) {
        self.limit = max(1, limit)
    }

    /// Registers a new connection, idle until its first head; closes the longest-idle one when that makes room.
    func admit(_ channel: any Channel, now: ContinuousClock.Instant = .now) -> Ticket {
        let (ticket, victim): (Ticket, (any Channel)?) = state.withLock { state in
            let id = state.nextID
            state.nextID += 1
            var victim: (any Channel)?
            if state.entries.count >= limit {
                guard
                    let oldest = state.entries.filter({ $0.value.idleSince != nil })
                        .min(by: { $0.value.idleSince! < $1.value.idleSince! })
                else {
                    state.refused += 1
                    return (Ticket(id: id, admitted: false), nil)
                }
                victim = oldest.value.channel
                state.entries[oldest.key] = nil
                state.evicted += 1
            }
            state.entries[id] = Entry(channel: channel, idleSince: now)
            return (Ticket(id: id, admitted: true), victim)
        }
        victim?.close(promise: nil)
        return ticket
    }

    /// Marks a connection idle (waiting for its next head) or busy.
    func setIdle(_ id: Int, _ idle: Bool, now: ContinuousClock.Instant = .now) {
        state.withLock { state in
            guard state.entries[id] != nil else { return }
            state.entries[id]?.idleSince = idle ? now : nil
        }
    }

    /// Forgets a connection that has closed.
    func remove(_ id: Int) {
        _ = state.withLock { $0.entries.removeValue(forKey: id) }
    }

    /// Connections open now, and how many were closed or refused to keep under the limit since the start.
    var counts: (open: Int, evicted: Int, refused: Int) {
        state.withLock { ($0.entries.count, $0.evicted, $0.refused) }
    }
}
