import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ReelStore
import ReelTestSupport
import Testing

@testable import ReelServer

/// No request reaches a file outside a job's outputs: ids and frame numbers are never pieces of a path, and a
/// link placed among the outputs is not followed.
@Suite struct PathTraversalTests {
    static let secret = "TOP-SECRET-CONTENT"

    /// What an attacker might put where a job id or a frame number goes.
    static let attempts = [
        "..", "...", "../../secret.txt", "..%2F..%2Fsecret.txt", "%2e%2e%2f%2e%2e%2fsecret.txt",
        "%252e%252e%252f%252e%252e%252fsecret.txt", "..%252F..%252Fsecret.txt", "%2Fetc%2Fpasswd", "/etc/passwd",
        "%2F%2Fetc%2Fpasswd", "job%00", "%00", "1%00.png", "..%5C..%5Csecret.txt", "....//....//secret.txt",
        "%c0%ae%c0%ae%2fsecret.txt",
    ]

    @Test func idsAndFrameNumbersNeverBecomePaths() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory.appendingPathComponent("data"))
            // Files beside and above the outputs that no URL may reach.
            try FileManager.default.createDirectory(
                at: directory.appendingPathComponent("data"), withIntermediateDirectories: true)
            try Data(Self.secret.utf8).write(to: directory.appendingPathComponent("secret.txt"))
            try Data(Self.secret.utf8).write(to: directory.appendingPathComponent("data/secret.txt"))
            try await server.test { client in
                let key = KeyedServer.keyA
                let id = try await client.createJob(
                    key: key, #"{"prompt": "fox", "size": "64x64", "frames": 5, "png_frames": true}"#)
                _ = try await server.succeed(id, frames: [Data("frame one".utf8)])
                var uris: [String] = []
                for attempt in Self.attempts {
                    uris += [
                        "/v1/jobs/\(attempt)", "/v1/jobs/\(attempt)/video", "/v1/jobs/\(attempt)/metadata",
                        "/v1/jobs/\(attempt)/frames/1.png", "/v1/jobs/\(id)/frames/\(attempt)",
                        "/v1/jobs/\(id)/frames/\(attempt).png", "/v1/videos/\(attempt)",
                        "/v1/videos/\(attempt)/content",
                        "/v1/videos/\(attempt)/content?variant=thumbnail", "/v1/batches/\(attempt)",
                        "/v1/batches/\(attempt)/report.csv", "/v1/jobs/\(id)/video/\(attempt)",
                        "/v1/videos/\(id)/content?variant=\(attempt)",
                    ]
                }
                for uri in uris {
                    let response = try await client.call(.get, uri, key: key)
                    let body = String(buffer: response.body)
                    #expect([.notFound, .badRequest].contains(response.status), "\(uri): \(response.status)")
                    #expect(!body.contains(Self.secret) && !body.contains("root:"), "\(uri)")
                    #expect(try response.apiError()["code"] is String, "\(uri)")
                }
                // The real files are still served.
                #expect(try await client.call(.get, "/v1/jobs/\(id)/frames/1.png", key: key).status == .ok)
            }
        }
    }

    @Test func aLinkPlacedInTheOutputsIsNotFollowed() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory.appendingPathComponent("data"))
            let secret = directory.appendingPathComponent("secret.txt")
            try Data(Self.secret.utf8).write(to: secret)
            let outside = directory.appendingPathComponent("outside-frames")
            try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
            try Data(Self.secret.utf8).write(to: outside.appendingPathComponent("000001.png"))
            try await server.test { client in
                let key = KeyedServer.keyA
                let spec = #"{"prompt": "fox", "size": "64x64", "frames": 5, "png_frames": true}"#

                // Each of the job's files replaced by a link to the secret.
                let linked = try await client.createJob(key: key, spec)
                let outputs = try await server.succeed(linked, frames: [Data("frame".utf8), Data("frame".utf8)])
                for name in ["video.mp4", "job.json", "frames/000001.png"] {
                    let path = outputs.appendingPathComponent(name).path
                    try FileManager.default.removeItem(atPath: path)
                    try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: secret.path)
                }
                // A relative link that climbs out.
                let frame2 = outputs.appendingPathComponent("frames/000002.png").path
                try FileManager.default.removeItem(atPath: frame2)
                try FileManager.default.createSymbolicLink(
                    atPath: frame2, withDestinationPath: "../../../../secret.txt")

                // The frames directory itself a link to a directory outside.
                let swapped = try await client.createJob(key: key, spec)
                let swappedOutputs = try await server.succeed(swapped, frames: [Data("frame".utf8)])
                let frames = swappedOutputs.appendingPathComponent("frames")
                try FileManager.default.removeItem(at: frames)
                try FileManager.default.createSymbolicLink(at: frames, withDestinationURL: outside)

                for uri in [
                    "/v1/jobs/\(linked)/video", "/v1/jobs/\(linked)/metadata", "/v1/jobs/\(linked)/frames/1.png",
                    "/v1/jobs/\(linked)/frames/2.png", "/v1/videos/\(linked)/content",
                    "/v1/videos/\(linked)/content?variant=thumbnail", "/v1/jobs/\(swapped)/frames/1.png",
                ] {
                    let response = try await client.call(.get, uri, key: key)
                    #expect(response.status == .notFound, "\(uri): \(response.status)")
                    #expect(!String(buffer: response.body).contains(Self.secret), "\(uri)")
                }
                // The links are still there and unchanged: nothing was written through them either.
                #expect(try String(contentsOf: secret, encoding: .utf8) == Self.secret)
                #expect(!FileManager.default.fileExists(atPath: outputs.appendingPathComponent("thumbnail.jpg").path))
            }
        }
    }

    @Test func theContainmentCheckUsesTheRealPaths() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            let inside = directory.appendingPathComponent("outputs/job")
            try FileManager.default.createDirectory(
                at: inside.appendingPathComponent("frames"), withIntermediateDirectories: true)
            let file = inside.appendingPathComponent("video.mp4")
            try Data("x".utf8).write(to: file)
            #expect(JobFileResponse.isRegularFile(file.path, inside: inside.path))
            #expect(JobFileResponse.isRegularFile(inside.path + "/frames/../video.mp4", inside: inside.path))
            #expect(!JobFileResponse.isRegularFile(inside.path + "/../job/../../outputs/job", inside: inside.path))
            #expect(!JobFileResponse.isRegularFile(inside.path + "/frames", inside: inside.path), "a directory")
            // A sibling whose name merely starts with the directory's.
            let sibling = directory.appendingPathComponent("outputs/job2")
            try FileManager.default.createDirectory(at: sibling, withIntermediateDirectories: true)
            try Data("x".utf8).write(to: sibling.appendingPathComponent("video.mp4"))
            #expect(!JobFileResponse.isRegularFile(sibling.path + "/video.mp4", inside: inside.path))
        }
    }
}
