import Foundation
import Hummingbird
import ReelCore
import ReelScheduler
import ServiceLifecycle

/// Writes server events to a client as Server-Sent Events: `event: <kind>` and `data: <json>` per event, and a
/// `: ping` comment after every quiet `heartbeat`. Ends when the client goes away (a write fails), or when the
/// server shuts down gracefully, so an open stream never holds a shutdown up.
struct EventStream: Sendable {
    let events: AsyncStream<JobUpdate>
    /// Only this job's events, when set.
    let jobID: String?
    let heartbeat: Duration
    /// Whether the client may see an event: a tenant sees only its own jobs' events.
    var isVisible: @Sendable (JobUpdate) -> Bool = { _ in true }

    private enum Item: Sendable {
        case event(JobUpdate)
        case ping
    }

    func write(to writer: inout any ResponseBodyWriter) async throws {
        let (items, continuation) = AsyncStream<Item>.makeStream(bufferingPolicy: .bufferingNewest(1024))
        let encoder = APIJSON.makeEncoder()
        // Ends at once when the client goes away, rather than at the next write that fails: until then the
        // subscription, both buffers and the tasks below would be held for a reader that is gone.
        let presence = ClientPresence.current
        let token = presence?.onGone { continuation.finish() }
        defer { if let token { presence?.cancel(token) } }
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await event in events where jobID == nil || event.job == jobID {
                        if isVisible(event) { continuation.yield(.event(event)) }
                    }
                    continuation.finish()
                }
                group.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: heartbeat)
                        continuation.yield(.ping)
                    }
                }
                // A first comment at once: the client knows the stream is open and subscribed.
                try await writer.write(ByteBuffer(string: ": connected\n\n"))
                for await item in items {
                    switch item {
                    case .event(let event):
                        let data = String(decoding: try encoder.encode(event), as: UTF8.self)
                        try await writer.write(ByteBuffer(string: "event: \(event.kind)\ndata: \(data)\n\n"))
                    case .ping:
                        try await writer.write(ByteBuffer(string: ": ping\n\n"))
                    }
                }
                group.cancelAll()
            }
        } onGracefulShutdown: {
            continuation.finish()
        }
        try await writer.finish(nil)
    }
}
