import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ReelCore
import ReelServer
import ReelStore
import ReelTestSupport
import Testing

/// `/v1/videos` in the shape of OpenAI's videos API; the official SDK itself is tested against a live server in
/// ReelCLITests' OpenAIClientTests.
@Suite struct OpenAIVideoRoutesTests {
    static let key = KeyedServer.keyA

    @Test func createTakesMultipartJSONAndURLEncodedBodies() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory)
            try await server.test { client in
                let form = MultipartBody(fields: [
                    ("prompt", "a red fox"), ("model", "sora-2"), ("seconds", "0.2"), ("size", "64x64"), ("seed", "7"),
                    ("steps", "2"), ("png_frames", "true"), ("negative_prompt", "blurry"), ("priority", "3"),
                    ("guidance", "4.5"), ("fps", "16"),
                ])
                let response = try await client.execute(
                    uri: "/v1/videos", method: .post, headers: bearer(Self.key, [.contentType: form.contentType]),
                    body: form.buffer)
                #expect(response.status == .ok, "\(String(buffer: response.body))")
                let video = try response.object()
                let id = try #require(video["id"] as? String)
                #expect(video["object"] as? String == "video")
                #expect(video["status"] as? String == "queued")
                #expect(video["progress"] as? Int == 0)
                #expect(video["model"] as? String == "tiny", "sora-2 runs as the server's model")
                #expect(video["seconds"] as? String == "0.2")
                #expect(video["size"] as? String == "64x64")
                #expect(video["prompt"] as? String == "a red fox")
                #expect((video["created_at"] as? Int).map { abs($0 - Int(Date().timeIntervalSince1970)) < 60 } == true)
                for key in ["completed_at", "expires_at", "error", "remixed_from_video_id"] {
                    #expect(video[key] is NSNull, "\(key)")
                }
                let job = try #require(try await server.store.job(id: id))
                #expect(job.spec.seed == 7 && job.spec.steps == 2 && job.spec.pngFrames && job.spec.fps == 16)
                #expect(job.spec.frames == 5 && job.priority == 3 && job.spec.guidance == 4.5)
                #expect(job.spec.negativePrompt == "blurry")
                #expect(job.owner == server.owner(Self.key))

                let json = try await client.call(
                    .post, "/v1/videos", key: Self.key,
                    json:
                        #"{"prompt": "a kite", "model": "tiny", "seconds": 0.2, "size": "64x64", "style": "cinematic"}"#
                )
                #expect(json.status == .ok, "\(String(buffer: json.body))")
                #expect(try json.object()["prompt"] as? String == "a kite", "the user's prompt, not the styled one")
                let urlencoded = try await client.execute(
                    uri: "/v1/videos", method: .post,
                    headers: bearer(Self.key, [.contentType: "application/x-www-form-urlencoded"]),
                    body: ByteBuffer(string: "prompt=a+snowy+owl%21&seconds=0.2&size=64x64"))
                #expect(urlencoded.status == .ok, "\(String(buffer: urlencoded.body))")
                #expect(try urlencoded.object()["prompt"] as? String == "a snowy owl!")
                #expect(try await server.jobCount() == 3)
            }
        }
    }

    @Test func errorsUseOpenAIsEnvelopeAndNameTheParameter() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory)
            try await server.test { client in
                let size = try await client.call(
                    .post, "/v1/videos", key: Self.key, json: #"{"prompt": "a fox", "size": "1280x720"}"#)
                #expect(size.status == .badRequest)
                let error = try size.apiError()
                #expect(error["param"] as? String == "size")
                #expect(error["type"] as? String == "invalid_request_error")
                #expect(error["code"] as? String == "invalid_value")
                #expect((error["message"] as? String)?.contains("1280x704") == true, "names the nearest valid size")
                #expect(error["field"] == nil, "Reel's own key is not in OpenAI's envelope")

                let model = try await client.call(
                    .post, "/v1/videos", key: Self.key, json: #"{"prompt": "a fox", "model": "veo-3"}"#)
                #expect(try model.apiError()["param"] as? String == "model")
                let missing = try await client.call(.get, "/v1/videos/job_nope", key: Self.key)
                #expect(missing.status == .notFound)
                #expect(try missing.apiError()["code"] as? String == "not_found")
                #expect(try missing.apiError()["param"] is NSNull)
                let route = try await client.call(.post, "/v1/videos/job_nope/remix", key: Self.key, json: "{}")
                #expect(route.status == .notFound || route.status == .methodNotAllowed)
                #expect(try route.apiError()["type"] as? String == "invalid_request_error")
                let noPrompt = try await client.call(.post, "/v1/videos", key: Self.key, json: #"{"seconds": "4"}"#)
                #expect(try noPrompt.apiError()["param"] as? String == "prompt")
                let type = try await client.execute(
                    uri: "/v1/videos", method: .post, headers: bearer(Self.key, [.contentType: "text/plain"]),
                    body: ByteBuffer(string: "a fox"))
                #expect(try type.apiError()["param"] as? String == "Content-Type")
                // Reel's own routes keep Reel's shape.
                let job = try await client.call(.get, "/v1/jobs/job_nope", key: Self.key)
                #expect(try job.apiError()["field"] is NSNull)
                #expect(try job.apiError()["type"] == nil)
                #expect(try await server.jobCount() == 0)
            }
        }
    }

    @Test func retrieveAndListPageLikeTheSDK() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory)
            try await server.test { client in
                var ids: [String] = []
                for index in 0..<5 {
                    ids.append(
                        try await client.createJob(
                            key: Self.key, #"{"prompt": "fox \#(index)", "size": "64x64", "frames": 5}"#))
                }
                _ = try await client.createJob(key: KeyedServer.keyB)
                let first = try await client.call(.get, "/v1/videos?limit=2", key: Self.key)
                let page = try first.object()
                #expect(page["object"] as? String == "list")
                #expect(try first.dataList().map { $0["id"] as? String } == [ids[4], ids[3]])
                #expect(page["first_id"] as? String == ids[4])
                #expect(page["last_id"] as? String == ids[3])
                #expect(page["has_more"] as? Bool == true)
                let second = try await client.call(.get, "/v1/videos?limit=2&after=\(ids[3])", key: Self.key)
                #expect(try second.dataList().map { $0["id"] as? String } == [ids[2], ids[1]])
                let last = try await client.call(.get, "/v1/videos?limit=2&after=\(ids[1])", key: Self.key).object()
                #expect(last["has_more"] as? Bool == false)
                #expect((last["data"] as? [[String: Any]])?.count == 1)

                let ascending = try await client.call(.get, "/v1/videos?order=asc&limit=3", key: Self.key)
                #expect(try ascending.dataList().map { $0["id"] as? String } == Array(ids.prefix(3)))
                let rest = try await client.call(.get, "/v1/videos?order=asc&after=\(ids[2])", key: Self.key)
                #expect(try rest.dataList().map { $0["id"] as? String } == [ids[3], ids[4]])

                for bad in ["limit=0", "limit=101", "limit=x", "order=up", "after=job_nope", "page=2"] {
                    let response = try await client.call(.get, "/v1/videos?\(bad)", key: Self.key)
                    #expect(response.status == .badRequest, "\(bad)")
                }
                // Another tenant's id is no cursor.
                let others = try await client.call(.get, "/v1/videos", key: KeyedServer.keyB).dataList()
                let other = try #require(others.first?["id"] as? String)
                #expect(try await client.call(.get, "/v1/videos?after=\(other)", key: Self.key).status == .badRequest)
                #expect(try await client.call(.get, "/v1/jobs?before=\(other)", key: Self.key).status == .badRequest)

                let retrieved = try await client.call(.get, "/v1/videos/\(ids[0])", key: Self.key).object()
                #expect(retrieved["id"] as? String == ids[0])
                #expect(retrieved["seconds"] as? String == "0.21", "5 frames at 24 fps")
            }
        }
    }

    @Test func statusProgressAndErrorFollowTheJob() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory)
            try await server.test { client in
                let id = try await client.createJob(key: Self.key)
                let now = Date()
                let (_, lease) = try #require(
                    try await server.store.claim(owner: "test/cpu", slot: "cpu", leaseExpiresAt: now + 60, now: now))
                _ = try await server.store.renew(
                    lease, until: now + 60, progress: JobProgress(stage: "denoising", step: 5, total: 10), now: now)
                let running = try await client.call(.get, "/v1/videos/\(id)", key: Self.key).object()
                #expect(running["status"] as? String == "in_progress")
                #expect(running["progress"] as? Int == 47)
                _ = try await server.store.fail(
                    lease, code: "out_of_memory", message: "the GPU ran out of memory", retry: false,
                    memorySaving: false,
                    now: Date())
                let failed = try await client.call(.get, "/v1/videos/\(id)", key: Self.key).object()
                #expect(failed["status"] as? String == "failed")
                #expect(failed["completed_at"] is Int)
                let error = try #require(failed["error"] as? [String: Any])
                #expect(error["code"] as? String == "out_of_memory")
                #expect(error["message"] as? String == "the GPU ran out of memory")
            }
        }
    }

    @Test func contentServesTheVideoAndAThumbnailOnceCompleted() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory)
            try await server.test { client in
                let id = try await client.createJob(
                    key: Self.key, #"{"prompt": "fox", "size": "64x64", "frames": 5, "png_frames": true}"#)
                let early = try await client.call(.get, "/v1/videos/\(id)/content", key: Self.key)
                #expect(early.status == .notFound)
                #expect((try early.apiError()["message"] as? String)?.contains("queued") == true)

                let video = Data((0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
                let png = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3])
                _ = try await server.succeed(id, video: video, frames: [png])
                let completed = try await client.call(.get, "/v1/videos/\(id)", key: Self.key).object()
                #expect(completed["status"] as? String == "completed")
                #expect(completed["progress"] as? Int == 100)
                #expect(completed["completed_at"] is Int)

                for uri in ["/v1/videos/\(id)/content", "/v1/videos/\(id)/content?variant=video"] {
                    let response = try await client.call(.get, uri, key: Self.key)
                    #expect(response.status == .ok)
                    #expect(Data(buffer: response.body) == video)
                    #expect(response.headers[.contentType] == "video/mp4")
                    #expect(response.headers[.xContentTypeOptions] == "nosniff")
                    #expect(response.headers[.contentDisposition] == "attachment; filename=\"\(id).mp4\"")
                }
                let thumbnail = try await client.call(.get, "/v1/videos/\(id)/content?variant=thumbnail", key: Self.key)
                #expect(thumbnail.status == .ok)
                #expect(Data(buffer: thumbnail.body) == png)
                #expect(thumbnail.headers[.contentType] == "image/png")
                #expect(thumbnail.headers[.xContentTypeOptions] == "nosniff")
                #expect(thumbnail.headers[.contentDisposition] == "attachment; filename=\"\(id)-thumbnail.png\"")
                let sprites = try await client.call(.get, "/v1/videos/\(id)/content?variant=spritesheet", key: Self.key)
                #expect(sprites.status == .badRequest)
                #expect(try sprites.apiError()["param"] as? String == "variant")

                // Every file response carries the three headers.
                for uri in ["/v1/jobs/\(id)/video", "/v1/jobs/\(id)/metadata", "/v1/jobs/\(id)/frames/1.png"] {
                    let response = try await client.call(.get, uri, key: Self.key)
                    #expect(response.status == .ok, "\(uri)")
                    #expect(response.headers[.contentType] != nil, "\(uri)")
                    #expect(response.headers[.xContentTypeOptions] == "nosniff", "\(uri)")
                    #expect(
                        response.headers[.contentDisposition]?.hasPrefix("attachment; filename=\"\(id)") == true,
                        "\(uri)")
                }
            }
        }
    }

    @Test func deleteCancelsOrRemovesForGood() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory)
            try await server.test { client in
                // Queued: cancelled and deleted at once.
                let queued = try await client.createJob(key: Self.key)
                let deleted = try await client.call(.delete, "/v1/videos/\(queued)", key: Self.key).object()
                #expect(deleted["id"] as? String == queued)
                #expect(deleted["object"] as? String == "video.deleted")
                #expect(deleted["deleted"] as? Bool == true)
                #expect(try await server.store.job(id: queued) == nil)
                #expect(try await client.call(.get, "/v1/videos/\(queued)", key: Self.key).status == .notFound)

                // Running: asked to stop; listed as failed (cancelled) until deleted again.
                let running = try await client.createJob(key: Self.key)
                let now = Date()
                let (_, lease) = try #require(
                    try await server.store.claim(owner: "test/cpu", slot: "cpu", leaseExpiresAt: now + 60, now: now))
                let stopping = try await client.call(.delete, "/v1/videos/\(running)", key: Self.key).object()
                #expect(stopping["deleted"] as? Bool == false)
                #expect(try await server.store.job(id: running)?.cancelRequested == true)
                _ = try await server.store.finishCancelled(lease, now: Date())
                let cancelled = try await client.call(.get, "/v1/videos/\(running)", key: Self.key).object()
                #expect(cancelled["status"] as? String == "failed")
                #expect((cancelled["error"] as? [String: Any])?["code"] as? String == "cancelled")
                #expect(
                    try await client.call(.delete, "/v1/videos/\(running)", key: Self.key).object()["deleted"] as? Bool
                        == true)

                // Finished: its row, events and files go; it leaves every listing.
                let finished = try await client.createJob(key: Self.key)
                let outputs = try await server.succeed(finished, frames: [Data("f".utf8)])
                #expect(FileManager.default.fileExists(atPath: outputs.path))
                #expect(
                    try await client.call(.delete, "/v1/videos/\(finished)", key: Self.key).object()["deleted"] as? Bool
                        == true)
                #expect(!FileManager.default.fileExists(atPath: outputs.path))
                #expect(try await server.store.events(jobID: finished).isEmpty)
                #expect(try await client.call(.get, "/v1/videos", key: Self.key).dataList().isEmpty)
                #expect(try await client.call(.get, "/v1/jobs", key: Self.key).dataList().isEmpty)
                #expect(try await client.call(.delete, "/v1/videos/\(finished)", key: Self.key).status == .notFound)
            }
        }
    }

    @Test func aTenantsEventStreamCarriesOnlyItsOwnJobs() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory)
            try await server.test(.live) { client in
                let stream = try RawHTTPConnection(port: try #require(client.port))
                try await stream.send(
                    "GET /v1/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(KeyedServer.keyB)\r\n\r\n")
                _ = try await stream.waitFor(": connected")
                let theirs = try await client.createJob(key: KeyedServer.keyA)
                let own = try await client.createJob(key: KeyedServer.keyB)
                let text = try await stream.waitFor(own)
                #expect(!text.contains(theirs))
                #expect(try await client.call(.delete, "/v1/jobs/\(theirs)", key: KeyedServer.keyA).status == .ok)
                #expect(try await client.call(.delete, "/v1/jobs/\(own)", key: KeyedServer.keyB).status == .ok)
                let after = try await stream.waitFor("event: cancelled")
                #expect(!after.contains(theirs))
            }
        }
    }
}
