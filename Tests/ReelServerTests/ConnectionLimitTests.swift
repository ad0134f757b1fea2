import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOEmbedded
import Testing

@testable import ReelServer

/// Slow, idle and departed clients over real sockets: none of them holds a connection (or what a stream
/// subscribed to) for long, and a health check always gets through.
@Suite struct ConnectionLimitTests {
    static func server(
        timeout: Duration = .seconds(30), maxConnections: Int? = nil, heartbeat: Duration = .seconds(15)
    )
        throws -> TestServer
    {
        try TestServer(
            configuration: ReelServerConfiguration(
                port: 0, heartbeatInterval: heartbeat, requestTimeout: timeout, maxConnections: maxConnections))
    }

    /// Clients that trickle a header line now and then and never finish the head were all still open three minutes
    /// later (issue 16); now each is closed, with a 408, once the request timeout has passed since it opened.
    @Test func aHeadThatNeverCompletesIsClosedWithA408() async throws {
        let server = try Self.server(timeout: .milliseconds(600))
        try await server.test(.live) { client in
            let port = try #require(client.port)
            let opened = ContinuousClock.now
            let tricklers = try (0..<20).map { _ in try RawHTTPConnection(port: port) }
            for trickler in tricklers { try await trickler.send("GET /healthz HTTP/1.1\r\n") }
            // Keep sending a header line every 100 ms: activity, but never a whole head.
            for line in 0..<30 {
                if try await tricklers.asyncAllSatisfy({ $0.isClosedByPeer }) { break }
                for trickler in tricklers where !trickler.isClosedByPeer {
                    try await trickler.send("X-Line-\(line): 1\r\n")
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            for trickler in tricklers {
                let response = try await trickler.response()
                #expect(response.status == 408)
                #expect(response.apiError?["code"] as? String == "request_timeout", "\(response)")
                #expect(try await trickler.waitForClose(timeout: .seconds(5)))
            }
            #expect(ContinuousClock.now - opened < .seconds(5))
            // (The test client's own connection sat idle meanwhile and was closed too: ask on a new one.)
            let check = try RawHTTPConnection(port: port)
            try await check.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            #expect(try await check.response().status == 200)
        }
    }

    /// A keep-alive connection that sends nothing after its last answer is closed quietly after the timeout; one
    /// that keeps sending requests stays open.
    @Test func anIdleKeepAliveConnectionIsClosedQuietly() async throws {
        let server = try Self.server(timeout: .milliseconds(500))
        try await server.test(.live) { client in
            let port = try #require(client.port)
            let idle = try RawHTTPConnection(port: port)
            try await idle.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            #expect(try await idle.response().status == 200)
            #expect(try await idle.waitForClose(timeout: .seconds(5)))
            #expect(idle.text.components(separatedBy: "HTTP/1.1 ").count == 2, "no 408 after an answered request")

            let busy = try RawHTTPConnection(port: port)
            for _ in 0..<8 {
                try await busy.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
                _ = try await busy.waitFor("{\"status\":\"ok\"}")
                try await Task.sleep(for: .milliseconds(150))
            }
            #expect(!busy.isClosedByPeer)
        }
    }

    /// A body that stops halfway fails its request with a 408 once it has paused for the timeout.
    @Test func aBodyThatStallsGetsA408() async throws {
        let server = try Self.server(timeout: .milliseconds(500))
        try await server.test(.live) { client in
            let connection = try RawHTTPConnection(port: try #require(client.port))
            try await connection.send(
                "POST /v1/jobs HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"prompt\"")
            let response = try await connection.response(timeout: .seconds(10))
            #expect(response.status == 408)
            #expect(response.apiError?["code"] as? String == "request_timeout", "\(response)")
            #expect(try await connection.waitForClose(timeout: .seconds(5)))
            #expect(try await server.jobCount() == 0)
        }
    }

    /// 1,100 idle connections against 1,024 descriptors made /healthz time out (issue 16). With the connections
    /// capped, a newcomer closes the longest-idle one, so a health check always gets in; the oldest go first.
    @Test func idleConnectionsNeverKeepAHealthCheckOut() async throws {
        let server = try Self.server(maxConnections: 30)
        try await server.test(.live) { client in
            let port = try #require(client.port)
            var idle: [RawHTTPConnection] = []
            for _ in 0..<90 {
                idle.append(try RawHTTPConnection(port: port))
                try await Task.sleep(for: .milliseconds(2))
            }
            for _ in 0..<5 {
                let started = ContinuousClock.now
                let check = try RawHTTPConnection(port: port)
                try await check.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
                let response = try await check.response(timeout: .seconds(5))
                #expect(response.status == 200)
                #expect(ContinuousClock.now - started < .seconds(1))
            }
            // Room was made by closing idle ones: no more than the cap are open, and the first ones went first.
            try await Task.sleep(for: .milliseconds(200))
            var open = 0
            for connection in idle {
                connection.readAvailable()
                if !connection.isClosedByPeer { open += 1 }
            }
            #expect(open <= 30 && open >= 20, "\(open) of the idle connections are open")
            for connection in idle.prefix(20) { #expect(try await connection.waitForClose(timeout: .seconds(5))) }
        }
    }

    /// The registry closes the connection idle the longest, never a busy one, and refuses a newcomer only when
    /// every connection is busy.
    @Test func theLongestIdleConnectionIsClosedFirst() throws {
        let registry = ConnectionRegistry(limit: 3)
        let start = ContinuousClock.now
        let channels = (0..<5).map { _ in EmbeddedChannel() }
        let closed = ClosedChannels()
        for (index, channel) in channels.enumerated() {
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            channel.closeFuture.whenComplete { _ in closed.add(index) }
        }
        let a = registry.admit(channels[0], now: start)
        let b = registry.admit(channels[1], now: start + .seconds(1))
        let c = registry.admit(channels[2], now: start + .seconds(2))
        registry.setIdle(a.id, false)  // a is answering a request
        registry.setIdle(c.id, true, now: start + .seconds(3))  // c became idle again later than b
        let d = registry.admit(channels[3], now: start + .seconds(4))
        #expect(d.admitted)
        for channel in channels { channel.embeddedEventLoop.run() }
        #expect(closed.indices == [1], "b, idle the longest, is closed; a is busy, c idle since later")
        #expect(registry.counts.open == 3 && registry.counts.evicted == 1)
        registry.setIdle(c.id, false)
        registry.setIdle(d.id, false)
        let e = registry.admit(channels[4], now: start + .seconds(5))
        #expect(!e.admitted, "every connection is busy")
        #expect(registry.counts.refused == 1)
        registry.remove(a.id)
        #expect(registry.admit(channels[4], now: start + .seconds(6)).admitted)
    }

    /// When every allowed connection is busy (streams, here), a newcomer is told so with a 503 and Retry-After.
    @Test func aServerFullOfBusyConnectionsAnswers503() async throws {
        let server = try Self.server(maxConnections: 3)
        try await server.test(.live) { client in
            let port = try #require(client.port)
            // Opened one after another, so none is idle when the next arrives (the test client holds one more).
            var streams: [RawHTTPStream] = []
            defer { streams.forEach { $0.close() } }
            for _ in 0..<3 {
                let stream = try RawHTTPStream(port: port, path: "/v1/events")
                _ = try await stream.waitFor(": connected")
                streams.append(stream)
            }
            let refused = try RawHTTPConnection(port: port)
            let response = try await refused.response()
            #expect(response.status == 503)
            #expect(response.headers["retry-after"] != nil)
            #expect(response.apiError?["code"] as? String == "too_many_connections", "\(response)")
        }
    }

    /// Each closed event stream left about 36 KB behind until its next heartbeat could fail (15 s later), and
    /// 3,000 of them held 107 MB (issue 16). Now a stream ends when its client closes: the subscription is gone at
    /// once, with no heartbeat in between.
    @Test func aClosedEventStreamLetsGoAtOnce() async throws {
        let server = try Self.server(heartbeat: .seconds(3600))
        try await server.test(.live) { client in
            let port = try #require(client.port)
            for round in 0..<3 {
                let streams = try (0..<50).map { _ in try RawHTTPStream(port: port, path: "/v1/events") }
                for stream in streams { _ = try await stream.waitFor(": connected") }
                #expect(server.scheduler.store.updateSubscriberCount == 50)
                for stream in streams { stream.close() }
                let deadline = ContinuousClock.now + .seconds(5)
                while server.scheduler.store.updateSubscriberCount > 0 && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(10))
                }
                #expect(server.scheduler.store.updateSubscriberCount == 0, "round \(round)")
            }
        }
    }
}

final class ClosedChannels: @unchecked Sendable {
    private let lock = NSLock()
    private var set: Set<Int> = []
    func add(_ index: Int) { lock.withLock { _ = set.insert(index) } }
    var indices: Set<Int> { lock.withLock { set } }
}

extension Sequence {
    func asyncAllSatisfy(_ predicate: (Element) async throws -> Bool) async rethrows -> Bool {
        for element in self where !(try await predicate(element)) { return false }
        return true
    }
}
