import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ReelCore
import ReelServer
import ReelStore
import ReelTestSupport
import Testing

@Suite struct JobFileRoutesTests {
    /// Takes the only queued job through claim and complete, with outputs written to `directory`.
    static func succeed(_ server: TestServer, in directory: URL, video: Data, frames: [Data]) async throws {
        let framesDirectory = directory.appendingPathComponent("frames")
        try FileManager.default.createDirectory(at: framesDirectory, withIntermediateDirectories: true)
        try video.write(to: directory.appendingPathComponent("video.mp4"))
        try Data("{}".utf8).write(to: directory.appendingPathComponent("metadata.json"))
        for (index, frame) in frames.enumerated() {
            try frame.write(to: framesDirectory.appendingPathComponent(String(format: "%06d.png", index + 1)))
        }
        let now = Date()
        let (_, lease) = try #require(
            try await server.store.claim(
                owner: "test/cpu", slot: "cpu", leaseExpiresAt: now.addingTimeInterval(60), now: now))
        let outputs = JobOutputs(
            directory: directory.path, video: directory.appendingPathComponent("video.mp4").path,
            metadata: directory.appendingPathComponent("metadata.json").path, framesDirectory: framesDirectory.path,
            frameCount: frames.count, secondsPerStage: ["denoising": 1.5, "total": 2])
        #expect(try await server.store.complete(lease, outputs: outputs, now: Date()))
    }

    @Test func videoIs404UntilTheJobSucceeds() async throws {
        let server = try TestServer()
        try await server.test { client in
            let id = try await client.submitJob()
            for uri in ["/v1/jobs/\(id)/video", "/v1/jobs/\(id)/frames/1.png"] {
                let response = try await client.execute(uri: uri, method: .get)
                #expect(response.status == .notFound)
                #expect(try response.apiError()["code"] as? String == "not_found")
            }
            #expect(try await client.execute(uri: "/v1/jobs/job_nope/video", method: .get).status == .notFound)
        }
    }

    @Test func aSucceededJobServesItsVideoAndFrames() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try TestServer()
            // A file beside the outputs that no URL may reach.
            try Data("TOP-SECRET-CONTENT".utf8).write(to: directory.appendingPathComponent("secret.png"))
            let outputDirectory = directory.appendingPathComponent("outputs/job")
            let video = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            let frames = [Data("frame one".utf8), Data("frame two".utf8)]
            try await server.test { client in
                let id = try await client.submitJob(#"{"prompt": "fox", "png_frames": true}"#)
                try await Self.succeed(server, in: outputDirectory, video: video, frames: frames)

                let job = try await client.execute(uri: "/v1/jobs/\(id)", method: .get).object()
                #expect(job["state"] as? String == "succeeded")
                let outputs = try #require(job["outputs"] as? [String: Any])
                #expect(outputs["video_url"] as? String == "/v1/jobs/\(id)/video")
                #expect(outputs["frame_count"] as? Int == 2)
                #expect((outputs["seconds_per_stage"] as? [String: Double])?["denoising"] == 1.5)

                let response = try await client.execute(uri: "/v1/jobs/\(id)/video", method: .get)
                #expect(response.status == .ok)
                #expect(Data(buffer: response.body) == video)
                #expect(response.headers[.contentType] == "video/mp4")
                #expect(response.headers[.xContentTypeOptions] == "nosniff")
                #expect(response.headers[.contentDisposition] == "attachment; filename=\"\(id).mp4\"")

                let frame = try await client.execute(uri: "/v1/jobs/\(id)/frames/2.png", method: .get)
                #expect(frame.status == .ok)
                #expect(Data(buffer: frame.body) == frames[1])
                #expect(frame.headers[.contentType] == "image/png")
                #expect(frame.headers[.xContentTypeOptions] == "nosniff")
                #expect(frame.headers[.contentDisposition] == "attachment; filename=\"\(id)-000002.png\"")
                let first = try await client.execute(uri: "/v1/jobs/\(id)/frames/000001.png", method: .get)
                #expect(Data(buffer: first.body) == frames[0])

                for bad in [
                    "0.png", "3.png", "abc.png", "-1.png", "+1.png", "1.5.png", "..%2F..%2Fsecret.png",
                    "..%2F..%2F..%2F..%2Fetc%2Fpasswd.png", "../../secret.png", "../../../../../etc/passwd",
                    "%2e%2e/%2e%2e/secret.png",
                ] {
                    let response = try await client.execute(uri: "/v1/jobs/\(id)/frames/\(bad)", method: .get)
                    #expect(response.status == .notFound || response.status == .badRequest, "\(bad)")
                    #expect(!String(buffer: response.body).contains("TOP-SECRET"), "\(bad)")
                    #expect(!String(buffer: response.body).contains("root:"), "\(bad)")
                    #expect(try response.apiError()["code"] is String, "\(bad)")
                }
            }
        }
    }

    @Test func aJobWithoutPNGFramesHasNone() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try TestServer()
            try await server.test { client in
                let id = try await client.submitJob()
                let now = Date()
                let (_, lease) = try #require(
                    try await server.store.claim(
                        owner: "test/cpu", slot: "cpu", leaseExpiresAt: now.addingTimeInterval(60), now: now))
                let video = directory.appendingPathComponent("video.mp4")
                try Data("mp4".utf8).write(to: video)
                let outputs = JobOutputs(directory: directory.path, video: video.path, metadata: video.path)
                #expect(try await server.store.complete(lease, outputs: outputs, now: now))

                #expect(try await client.execute(uri: "/v1/jobs/\(id)/video", method: .get).status == .ok)
                let frame = try await client.execute(uri: "/v1/jobs/\(id)/frames/1.png", method: .get)
                #expect(frame.status == .notFound)
                #expect((try frame.apiError()["message"] as? String)?.contains("png_frames") == true)

                // A video removed from disk since is a 404, not a 500.
                try FileManager.default.removeItem(at: video)
                #expect(try await client.execute(uri: "/v1/jobs/\(id)/video", method: .get).status == .notFound)
            }
        }
    }
}
