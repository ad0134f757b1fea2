import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ReelServer
import ReelStore
import ReelTestSupport
import Testing

@Suite struct RequestLimitTests {
    static let smallLimit = 64 << 10

    /// Each route that takes a body, with a body that is valid but for its size.
    static let bodyRoutes: [(uri: String, contentType: String)] = [
        ("/v1/jobs", "application/json"), ("/v1/videos", "application/json"), ("/v1/batches", "text/csv"),
    ]

    @Test func aDeclaredContentLengthOverTheLimitIs413() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(
                dataDirectory: directory, maxBodyBytes: Self.smallLimit, maxBatchBytes: Self.smallLimit)
            try await server.test { client in
                for route in Self.bodyRoutes {
                    let body = ByteBuffer(repeating: UInt8(ascii: "a"), count: Self.smallLimit + 1)
                    let response = try await client.execute(
                        uri: route.uri, method: .post,
                        headers: bearer(KeyedServer.keyA, [.contentType: route.contentType]),
                        body: body)
                    #expect(response.status == .contentTooLarge, "\(route.uri)")
                    let error = try response.apiError()
                    #expect(error["code"] as? String == "payload_too_large", "\(route.uri)")
                    #expect((error["message"] as? String)?.contains(String(Self.smallLimit)) == true, "\(route.uri)")
                }
                #expect(try await server.jobCount() == 0)
            }
        }
    }

    /// A Content-Length far beyond the limit is refused from the head alone, and a chunked body (no length) that
    /// grows past the limit is refused as soon as it does: in both cases the server answers 413 while the client is
    /// still sending, and never waits for the rest.
    @Test func a413ComesBeforeTheWholeBodyIsRead() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(
                dataDirectory: directory, maxBodyBytes: Self.smallLimit, maxBatchBytes: Self.smallLimit)
            try await server.test(.live) { client in
                let port = try #require(client.port)
                for route in Self.bodyRoutes {
                    // A declared 1 GB body, of which only the head is sent.
                    let declared = try RawHTTPConnection(port: port)
                    try await declared.send(
                        "POST \(route.uri) HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(KeyedServer.keyA)\r\n"
                            + "Content-Type: \(route.contentType)\r\nContent-Length: 1000000000\r\n\r\n")
                    let head = try await declared.waitFor("\r\n\r\n")
                    #expect(head.hasPrefix("HTTP/1.1 413"), "\(route.uri): \(head)")
                    // The rest of the body is never read, so the connection cannot carry another request: the
                    // answer says so, and the server closes it.
                    #expect(head.lowercased().contains("connection: close"), "\(route.uri): \(head)")
                    let closedBy = ContinuousClock.now + .seconds(5)
                    while !declared.isClosedByPeer, ContinuousClock.now < closedBy {
                        if !declared.readAvailable() { try await Task.sleep(for: .milliseconds(10)) }
                    }
                    #expect(declared.isClosedByPeer, "\(route.uri): the connection stayed open after the 413")

                    // A chunked body of 16 KiB chunks that would go on for 64 MiB and never ends.
                    let chunked = try RawHTTPConnection(port: port)
                    try await chunked.send(
                        "POST \(route.uri) HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(KeyedServer.keyA)\r\n"
                            + "Content-Type: \(route.contentType)\r\nTransfer-Encoding: chunked\r\n\r\n")
                    let chunk =
                        Array("4000\r\n".utf8) + [UInt8](repeating: UInt8(ascii: "a"), count: 0x4000)
                        + Array("\r\n".utf8)
                    var sentBytes = 0
                    var answeredEarly = false
                    for _ in 0..<4096 {
                        guard try await chunked.send(chunk) else {
                            answeredEarly = true
                            break
                        }
                        sentBytes += 0x4000
                    }
                    let answer = try await chunked.waitFor("\r\n\r\n")
                    #expect(answeredEarly, "\(route.uri): the server read all \(sentBytes) bytes")
                    #expect(sentBytes < 64 << 20)
                    #expect(answer.hasPrefix("HTTP/1.1 413"), "\(route.uri): \(answer.prefix(200))")
                }
                #expect(try await server.jobCount() == 0)
            }
        }
    }

    @Test func eachKeyHasItsOwnRequestsPerMinute() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let clock = ManualClock()
            let server = try KeyedServer(dataDirectory: directory, rateLimit: 3, clock: clock)
            try await server.test { client in
                for _ in 0..<3 {
                    #expect(try await client.call(.get, "/v1/jobs", key: KeyedServer.keyA).status == .ok)
                }
                let limited = try await client.call(.get, "/v1/jobs", key: KeyedServer.keyA)
                #expect(limited.status == .tooManyRequests)
                let retryAfter = try #require(limited.headers[.retryAfter].flatMap(Int.init))
                #expect((1...20).contains(retryAfter), "one request's worth at 3 a minute is 20 s")
                #expect(try limited.apiError()["code"] as? String == "rate_limit_exceeded")
                // In OpenAI's shape on /v1/videos.
                let videos = try await client.call(.get, "/v1/videos", key: KeyedServer.keyA)
                #expect(videos.status == .tooManyRequests)
                #expect(try videos.apiError()["type"] as? String == "rate_limit_error")
                #expect(videos.headers[.retryAfter] != nil)
                // Another key, and the health check, are not affected.
                #expect(try await client.call(.get, "/v1/jobs", key: KeyedServer.keyB).status == .ok)
                #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)
                // A wrong key is refused as such, not counted against anyone.
                #expect(try await client.call(.get, "/v1/jobs", key: KeyedServer.wrongKey).status == .unauthorized)
                // Once the wait it named has passed, the key may make one more request.
                clock.advance(.seconds(retryAfter))
                #expect(try await client.call(.get, "/v1/jobs", key: KeyedServer.keyA).status == .ok)
                #expect(try await client.call(.get, "/v1/jobs", key: KeyedServer.keyA).status == .tooManyRequests)
            }
        }
    }

    @Test func theTokenBucketRefillsOverTheMinute() {
        let clock = ManualClock()
        let limiter = RateLimiter(perMinute: 6, clock: { clock.now })
        for _ in 0..<6 { #expect(limiter.take("a") == nil) }
        #expect(limiter.take("a") == 10, "one token every 10 s")
        clock.advance(.seconds(4))
        #expect(limiter.take("a") == 6)
        clock.advance(.milliseconds(6500))
        #expect(limiter.take("a") == nil)
        #expect(limiter.take("a") != nil)
        clock.advance(.seconds(3600))
        for _ in 0..<6 { #expect(limiter.take("a") == nil) }
        #expect(limiter.take("a") != nil, "a bucket holds a minute's worth, however long it rested")
        #expect(limiter.take("b") == nil)
    }

    @Test func eachKeyMayHaveOnlySoManyJobsQueued() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory, maxQueued: 2)
            try await server.test { client in
                let first = try await client.createJob(key: KeyedServer.keyA)
                _ = try await client.createJob(key: KeyedServer.keyA)
                let refused = try await client.call(.post, "/v1/jobs", key: KeyedServer.keyA, json: APIKeyTests.spec)
                #expect(refused.status == .tooManyRequests)
                #expect(refused.headers[.retryAfter] == String(JobService.queueFullRetryAfterSeconds))
                #expect(try refused.apiError()["code"] as? String == "too_many_queued")
                let video = try await client.call(
                    .post, "/v1/videos", key: KeyedServer.keyA, json: #"{"prompt": "a kite", "size": "64x64"}"#)
                #expect(video.status == .tooManyRequests)
                #expect(try video.apiError()["type"] as? String == "rate_limit_error")
                let batch = try await client.call(
                    .post, "/v1/batches", key: KeyedServer.keyA, json: #"{"jobs": [\#(APIKeyTests.spec)]}"#)
                #expect(batch.status == .tooManyRequests)
                #expect(
                    try await server.store.counts(owner: try #require(server.owner(KeyedServer.keyA)))[.queued] == 2)

                // Another key has its own queue; a batch larger than the whole allowance is refused whole.
                _ = try await client.createJob(key: KeyedServer.keyB)
                let big = try await client.call(
                    .post, "/v1/batches", key: KeyedServer.keyB,
                    json: #"{"jobs": [\#(APIKeyTests.spec), \#(APIKeyTests.spec)]}"#)
                #expect(big.status == .tooManyRequests)
                #expect(
                    try await server.store.counts(owner: try #require(server.owner(KeyedServer.keyB)))[.queued] == 1)

                // A job that leaves the queue makes room.
                #expect(try await client.call(.delete, "/v1/jobs/\(first)", key: KeyedServer.keyA).status == .ok)
                #expect(
                    try await client.call(.post, "/v1/jobs", key: KeyedServer.keyA, json: APIKeyTests.spec).status
                        == .created)
            }
        }
    }

    @Test func racingSubmissionsNeverPassTheQueueLimit() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory, maxQueued: 5)
            try await server.test(.live) { client in
                let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                    for _ in 0..<20 {
                        group.addTask {
                            try await client.call(.post, "/v1/jobs", key: KeyedServer.keyA, json: APIKeyTests.spec)
                                .status
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(statuses.filter { $0 == .created }.count <= 5)
                #expect(statuses.allSatisfy { $0 == .created || $0 == .tooManyRequests })
                #expect(try await server.jobCount() <= 5)
            }
        }
    }
}

/// A clock a test moves by hand.
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var instant = ContinuousClock.now

    var now: ContinuousClock.Instant { lock.withLock { instant } }

    func advance(_ duration: Duration) { lock.withLock { instant = instant + duration } }
}
