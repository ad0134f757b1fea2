import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ReelServer
import ReelStore
import ReelTestSupport
import Testing

@Suite struct APIKeyTests {
    /// What a tenant other than the job's owner gets on a route.
    enum Access {
        /// Names a job or batch of the owner's: another tenant gets 404, the owner 2xx.
        case scoped
        /// The same, but the owner's answer is an endless event stream, which is not read here.
        case scopedStream
        /// Lists jobs: each tenant sees only its own.
        case listing
        /// Makes something of the caller's own.
        case create
        /// Not about jobs: any valid key gets its answer.
        case open
        /// An endless event stream: only the refusals are checked.
        case stream
        /// No such route: a valid key gets 404.
        case unknown
    }

    struct Route: CustomTestStringConvertible {
        var method: HTTPRequest.Method
        var path: String
        var json: String?
        var access: Access

        init(_ method: HTTPRequest.Method, _ path: String, json: String? = nil, _ access: Access) {
            self.method = method
            self.path = path
            self.json = json
            self.access = access
        }

        var testDescription: String { "\(method) \(path)" }
        var isVideos: Bool { path.hasPrefix("/v1/videos") }
    }

    static let spec = #"{"prompt": "a kite", "size": "64x64", "frames": 5}"#

    /// Every route of the API but `/healthz`.
    static let routes: [Route] = [
        Route(.post, "/v1/jobs", json: spec, .create),
        Route(.get, "/v1/jobs", .listing),
        Route(.get, "/v1/jobs/{job}", .scoped),
        Route(.get, "/v1/jobs/{job}/events", .scoped),
        Route(.get, "/v1/jobs/{job}/video", .scoped),
        Route(.get, "/v1/jobs/{job}/metadata", .scoped),
        Route(.get, "/v1/jobs/{job}/frames/1.png", .scoped),
        Route(.delete, "/v1/jobs/{queued}", .scoped),
        Route(.post, "/v1/batches", json: #"{"jobs": [\#(spec)]}"#, .create),
        Route(.get, "/v1/batches/{batch}", .scoped),
        Route(.get, "/v1/batches/{batch}/report.csv", .scoped),
        Route(.get, "/v1/events?job={job}", .scopedStream),
        Route(.get, "/v1/events", .stream),
        Route(.get, "/v1/styles", .open),
        Route(.get, "/v1/styles/cinematic", .open),
        Route(.get, "/v1/workers", .open),
        Route(.get, "/readyz", .open),
        Route(.get, "/metrics", .open),
        Route(.post, "/v1/videos", json: #"{"prompt": "a kite", "size": "64x64", "seconds": "0.2"}"#, .create),
        Route(.get, "/v1/videos", .listing),
        Route(.get, "/v1/videos/{job}", .scoped),
        Route(.get, "/v1/videos/{job}/content", .scoped),
        Route(.get, "/v1/videos/{job}/content?variant=thumbnail", .scoped),
        Route(.delete, "/v1/videos/{queued}", .scoped),
        Route(.get, "/v1/no-such-route", .unknown),
    ]

    @Test func everyRouteRefusesNoKeyAWrongKeyAndAnotherTenant() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory)
            let keyA = KeyedServer.keyA
            let keyB = KeyedServer.keyB
            try await server.test { client in
                // Tenant A's things: a finished job with its files, a queued one, a batch.
                let job = try await client.createJob(key: keyA)
                _ = try await server.succeed(job, frames: [Data("frame one".utf8)])
                let queued = try await client.createJob(key: keyA)
                let batchResponse = try await client.call(
                    .post, "/v1/batches", key: keyA, json: #"{"jobs": [\#(Self.spec)]}"#)
                let batch = try #require(try batchResponse.object()["id"] as? String)

                for route in Self.routes {
                    let uri = route.path.replacingOccurrences(of: "{job}", with: job)
                        .replacingOccurrences(of: "{queued}", with: queued).replacingOccurrences(
                            of: "{batch}", with: batch)

                    for (presented, code) in [
                        (nil, "missing_api_key"), ("Basic \(keyA)", "missing_api_key"),
                        ("Bearer \(KeyedServer.wrongKey)", "invalid_api_key"),
                        ("Bearer \(keyA)x", "invalid_api_key"), ("Bearer ", "missing_api_key"),
                    ] {
                        var headers: HTTPFields = route.json == nil ? [:] : [.contentType: "application/json"]
                        if let presented { headers[.authorization] = presented }
                        let response = try await client.execute(
                            uri: uri, method: route.method, headers: headers,
                            body: route.json.map { ByteBuffer(string: $0) })
                        #expect(
                            response.status == .unauthorized, "\(route.testDescription) with \(presented ?? "no key")")
                        #expect(
                            response.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true, "\(route.testDescription)")
                        let error = try response.apiError()
                        #expect(
                            error["code"] as? String == code, "\(route.testDescription) with \(presented ?? "no key")")
                        if route.isVideos {
                            #expect(error["type"] as? String == "invalid_request_error", "\(route.testDescription)")
                            #expect(error.keys.contains("param"), "\(route.testDescription)")
                        } else {
                            #expect(error.keys.contains("field"), "\(route.testDescription)")
                        }
                    }

                    let asB: TestResponse? =
                        route.access == .stream
                        ? nil : try await client.call(route.method, uri, key: keyB, json: route.json)
                    let asA: TestResponse? =
                        [.stream, .scopedStream].contains(route.access)
                        ? nil
                        : try await client.call(route.method, uri, key: keyA, json: route.json)
                    let what = route.testDescription
                    switch route.access {
                    case .scoped, .scopedStream:
                        #expect(asB?.status == .notFound, "\(what) as another tenant")
                        #expect(try asB?.apiError()["code"] as? String == "not_found", "\(what)")
                        #expect(asB.map { String(buffer: $0.body).contains("frame one") } == false, "\(what)")
                        if let asA { #expect(asA.status == .ok, "\(what) as the owner: \(String(buffer: asA.body))") }
                    case .listing:
                        #expect(asB?.status == .ok, "\(what)")
                        let ids = try asB?.dataList().compactMap { $0["id"] as? String } ?? []
                        #expect(!ids.contains(job) && !ids.contains(queued), "\(what) lists another tenant's jobs")
                        let own = try asA?.dataList().compactMap { $0["id"] as? String } ?? []
                        #expect(own.contains(job), "\(what) as the owner")
                    case .create:
                        #expect(asB.map { (200..<300).contains($0.status.code) } == true, "\(what)")
                        #expect(asA.map { (200..<300).contains($0.status.code) } == true, "\(what)")
                    case .open:
                        #expect(asB.map { $0.status != .unauthorized && $0.status != .notFound } == true, "\(what)")
                    case .unknown:
                        #expect(asB?.status == .notFound, "\(what)")
                    case .stream:
                        break
                    }
                }

                // Another tenant's delete changed nothing; the owner's own requests did.
                let stored = try #require(try await server.store.job(id: job))
                #expect(stored.state == .succeeded && stored.owner == server.owner(keyA))
                #expect(try await server.store.job(id: queued) == nil, "deleted by its owner through /v1/videos")
                // B's jobs are B's.
                let ownersOfB = try await server.store.jobs(matching: JobQuery(owner: server.owner(keyB), limit: 100))
                #expect(ownersOfB.count == 3)
            }
        }
    }

    @Test func healthzNeedsNoKey() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory)
            try await server.test { client in
                #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)
                // Nothing else slips through by its spelling.
                for uri in ["/healthz/", "//healthz", "/HEALTHZ", "/healthz/../v1/jobs", "/v1/jobs?x=/healthz"] {
                    let response = try await client.execute(uri: uri, method: .get)
                    #expect(response.status == .unauthorized || response.status == .notFound, "\(uri)")
                    #expect(response.status != .ok, "\(uri)")
                }
            }
        }
    }

    @Test func theWebPageLoadsWithoutAKeyButItsAPICallsNeedOne() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory)
            try await server.test { client in
                #expect(try await client.execute(uri: "/", method: .get).status == .ok)
                #expect(try await client.execute(uri: "/web/app.js", method: .get).status == .ok)
                for uri in ["/web/../v1/jobs", "/web/%2e%2e/v1/jobs", "/web/x/../../v1/jobs", "/v1/jobs"] {
                    let response = try await client.execute(uri: uri, method: .get)
                    #expect(response.status == .unauthorized, "\(uri)")
                }
            }
        }
    }

    @Test func withoutKeysEverythingIsOpenAndUnowned() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory, keys: nil)
            try await server.test { client in
                let id = try await client.createJob(key: nil)
                #expect(try await server.store.job(id: id)?.owner == nil)
                #expect(try await client.call(.get, "/v1/videos/\(id)", key: nil).status == .ok)
                // A key sent to an open server is ignored.
                #expect(try await client.call(.get, "/v1/jobs/\(id)", key: KeyedServer.wrongKey).status == .ok)
            }
        }
    }

    @Test func aTenantsIdempotencyKeysAreItsOwn() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory)
            try await server.test { client in
                func submit(_ key: String, _ prompt: String) async throws -> TestResponse {
                    try await client.execute(
                        uri: "/v1/jobs", method: .post,
                        headers: bearer(key, [.contentType: "application/json", idempotencyKey: "same-key"]),
                        body: ByteBuffer(string: #"{"prompt": "\#(prompt)", "size": "64x64", "frames": 5}"#))
                }
                #expect(try await submit(KeyedServer.keyA, "fox").status == .created)
                // Another tenant's equal key neither returns A's job nor conflicts with it.
                #expect(try await submit(KeyedServer.keyB, "wolf").status == .created)
                #expect(try await submit(KeyedServer.keyA, "fox").status == .ok)
                let conflict = try await submit(KeyedServer.keyA, "bear")
                #expect(conflict.status == .conflict)
                #expect((try conflict.apiError()["message"] as? String)?.contains("\"same-key\"") == true)
            }
        }
    }

    @Test func keysAreParsedHashedAndCheckedForStrength() throws {
        let text =
            "# tenants\n\n  reel-test-key-alpha-0123456789  \n# reel-test-key-commented-out\nreel-test-key-bravo-0123456789\n"
        #expect(APIKeys.parse(file: text) == [KeyedServer.keyA, KeyedServer.keyB])
        #expect(APIKeys.parse(environment: " a , b,,c ") == ["a", "b", "c"])
        let keys = try APIKeys(keys: [KeyedServer.keyA, KeyedServer.keyB])
        #expect(keys.keys.count == 2)
        #expect(keys.keys.allSatisfy { $0.id.count == 12 && $0.id.allSatisfy(\.isHexDigit) })
        #expect(keys.key(for: KeyedServer.keyA)?.id == keys.keys[0].id)
        #expect(keys.key(for: KeyedServer.keyB)?.id == keys.keys[1].id)
        #expect(keys.key(for: KeyedServer.wrongKey) == nil)
        #expect(keys.key(for: "") == nil)
        #expect(throws: (any Error).self) { try APIKeys(keys: ["short"]) }
        #expect(throws: (any Error).self) { try APIKeys(keys: ["has a space in the middle"]) }
        #expect(throws: (any Error).self) { try APIKeys(keys: [KeyedServer.keyA, KeyedServer.keyA]) }
    }

    @Test func loopbackAddresses() {
        for host in ["127.0.0.1", "127.1.2.3", "localhost", "::1", "LOCALHOST"] {
            #expect(ReelServerConfiguration.isLoopback(host), "\(host)")
        }
        for host in ["0.0.0.0", "::", "192.168.1.10", "127.0.0.256", "127.0.0.1.example.com", "example.com", ""] {
            #expect(!ReelServerConfiguration.isLoopback(host), "\(host)")
        }
    }
}
