import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ReelServer
import ReelStore
import ReelTestSupport
import Testing

/// What crashed or stalled the server in issue 16, through every route that takes it: each is a 400 that names
/// the field, queues nothing, and leaves the server answering.
@Suite struct ClientInputRoutesTests {
    static let sizes = [
        "+3037000512x+3037000512", "3037000512\nx3037000512", "3037000512x3037000512", "+64x+64",
        "4294967296x4294967296",
    ]

    func jsonString(_ text: String) -> String {
        String(decoding: try! JSONEncoder().encode(text), as: UTF8.self)
    }

    @Test func overflowingSizesAre400OnEveryRoute() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory)
            try await server.test { client in
                let key = KeyedServer.keyA
                for size in Self.sizes {
                    let json = #"{"prompt": "a fox", "size": \#(jsonString(size))}"#
                    let job = try await client.call(.post, "/v1/jobs", key: key, json: json)
                    #expect(job.status == .badRequest, "\(size)")
                    #expect(try job.apiError()["field"] as? String == "size", "\(size)")
                    let video = try await client.call(.post, "/v1/videos", key: key, json: json)
                    #expect(video.status == .badRequest)
                    #expect(try video.apiError()["param"] as? String == "size")
                    let form = MultipartBody(fields: [("prompt", "a fox"), ("size", size)])
                    let multipart = try await client.execute(
                        uri: "/v1/videos", method: .post, headers: bearer(key, [.contentType: form.contentType]),
                        body: form.buffer)
                    #expect(multipart.status == .badRequest)
                    #expect(try multipart.apiError()["param"] as? String == "size")
                    let encoded = size.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
                    let urlencoded = try await client.execute(
                        uri: "/v1/videos", method: .post,
                        headers: bearer(key, [.contentType: "application/x-www-form-urlencoded"]),
                        body: ByteBuffer(string: "prompt=fox&size=\(encoded)"))
                    #expect(urlencoded.status == .badRequest)
                    #expect(try urlencoded.apiError()["param"] as? String == "size")
                    let csv = "prompt,size\r\nfox,\"\(size)\"\r\n"
                    let batch = try await client.execute(
                        uri: "/v1/batches", method: .post, headers: bearer(key, [.contentType: "text/csv"]),
                        body: ByteBuffer(string: csv))
                    let rejected = try #require(try batch.object()["rejected"] as? [[String: Any]], "\(size)")
                    #expect(rejected.first?["column"] as? String == "size")
                    let jsonBatch = try await client.call(
                        .post, "/v1/batches", key: key, json: #"{"jobs": [\#(json)]}"#)
                    #expect(
                        (try jsonBatch.object()["rejected"] as? [[String: Any]])?.first?["column"] as? String == "size")
                }
                #expect(try await server.jobCount() == 0)
                #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)
            }
        }
    }

    @Test func formFieldsAndQueryValuesFollowTheSameGrammar() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory)
            try await server.test { client in
                for (name, value) in [
                    ("frames", "+5"), ("steps", " 4 4"), ("seed", "0x10"), ("guidance", "inf"),
                    ("seconds", "0x1p2"),
                ] {
                    let form = MultipartBody(fields: [("prompt", "a fox"), (name, value)])
                    let response = try await client.execute(
                        uri: "/v1/videos", method: .post,
                        headers: bearer(KeyedServer.keyA, [.contentType: form.contentType]), body: form.buffer)
                    #expect(response.status == .badRequest)
                    #expect(try response.apiError()["param"] as? String == name)
                }
                for uri in ["/v1/jobs?limit=+5", "/v1/jobs?limit=5.0", "/v1/videos?limit=0x10"] {
                    let response = try await client.call(.get, uri, key: KeyedServer.keyA)
                    #expect(response.status == .badRequest, "\(uri)")
                }
                #expect(try await client.call(.get, "/v1/jobs?limit=5", key: KeyedServer.keyA).status == .ok)
            }
        }
    }

    /// A 300 KB prompt of combining marks was accepted: the limit counted characters, and each character carried
    /// dozens of marks. Now the limit counts Unicode scalars after NFKC, and longer runs of marks are refused outright.
    @Test func combiningMarksDoNotCarryAHugePrompt() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory)
            try await server.test { client in
                // 4,000 characters (the limit) of 31 scalars each: 248 KB.
                let prompt = String(repeating: "a" + String(repeating: "\u{0316}", count: 30), count: 4000)
                #expect(prompt.count == 4000 && prompt.utf8.count > 240_000)
                let response = try await client.call(
                    .post, "/v1/jobs", key: KeyedServer.keyA, json: #"{"prompt": \#(jsonString(prompt))}"#)
                #expect(response.status == .badRequest)
                #expect(try response.apiError()["field"] as? String == "prompt", "\(String(buffer: response.body))")
                #expect((try response.apiError()["message"] as? String)?.contains("124000") == true)
                // One character with 150,000 marks is refused before it is parsed at all.
                let heavy = "a" + String(repeating: "\u{0301}", count: 150_000)
                let refused = try await client.call(
                    .post, "/v1/jobs", key: KeyedServer.keyA, json: #"{"prompt": \#(jsonString(heavy))}"#)
                #expect(refused.status == .badRequest)
                #expect((try refused.apiError()["message"] as? String)?.contains("combining marks") == true)
                #expect(try await server.jobCount() == 0)
            }
        }
    }

    /// Swift hashes strings by canonical equivalence, at a cost that grows with the square of a run of combining
    /// marks: a JSON key of such a run took seconds to decode. It is refused before decoding, through escapes too.
    @Test func runsOfCombiningMarksAreRefusedBeforeParsing() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory)
            try await server.test { client in
                let run = String(repeating: "\\u0316\\u0301", count: 40_000)
                let started = ContinuousClock.now
                for body in [#"{"a\#(run)": 1, "prompt": "x"}"#, #"{"prompt": "x", "style": "a\#(run)"}"#] {
                    for uri in ["/v1/jobs", "/v1/videos", "/v1/batches"] {
                        let json = uri == "/v1/batches" ? #"{"jobs": [\#(body)]}"# : body
                        let response = try await client.call(.post, uri, key: KeyedServer.keyA, json: json)
                        #expect(response.status == .badRequest, "\(uri)")
                        let error = try response.apiError()
                        #expect((error["message"] as? String)?.contains("combining marks") == true, "\(uri)")
                    }
                }
                #expect(ContinuousClock.now - started < .seconds(5), "took \(ContinuousClock.now - started)")
                #expect(try await server.jobCount() == 0)
            }
        }
    }
}

/// Found by the API fuzzer: a thumbnail asked for while the video was being deleted answered 500.
@Suite struct ThumbnailRaceTests {
    @Test func aVideoDeletedWhileItsThumbnailIsMadeIs404() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            // A stand-in for the engine's Python that deletes the video (as a DELETE would) and fails to decode it.
            let python = directory.appendingPathComponent("python")
            try "#!/bin/sh\nrm -f \"$3\"\nexit 1\n".write(to: python, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: python.path)
            let server = try KeyedServer(dataDirectory: directory, python: python.path)
            try await server.test { client in
                let id = try await client.createJob(key: KeyedServer.keyA)
                _ = try await server.succeed(id)
                let response = try await client.call(
                    .get, "/v1/videos/\(id)/content?variant=thumbnail", key: KeyedServer.keyA)
                #expect(response.status == .notFound, "\(String(buffer: response.body))")
                #expect((try response.apiError()["message"] as? String)?.contains("no longer on the server") == true)
            }
        }
    }
}
