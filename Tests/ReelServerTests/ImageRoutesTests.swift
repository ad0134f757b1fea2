import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ReelCore
import ReelServer
import ReelStore
import ReelTestSupport
import Testing

/// Images over HTTP: `POST /v1/images`, and a job, a batch or a video that starts from one, by id, `data:` URL or
/// file part.
@Suite struct ImageRoutesTests {
    static let pngType: HTTPFields = [.contentType: "image/png"]

    /// A multipart/form-data body: text fields, then file parts.
    static func form(_ fields: [(String, String)], files: [(String, [UInt8])]) -> (HTTPFields, ByteBuffer) {
        let body = MultipartBody(
            fields: fields, files: files.map { (name: $0.0, filename: "\($0.0).png", data: Data($0.1)) })
        return ([.contentType: body.contentType], body.buffer)
    }

    func withServer(
        model: String = "tiny", _ body: @Sendable @escaping (any TestClientProtocol, TestServer) async throws -> Void
    ) async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try TestServer(dataDirectory: directory.path, model: model)
            try await server.test { client in try await body(client, server) }
        }
    }

    @Test func anUploadIsStoredOnceAndDescribedByItsID() async throws {
        try await withServer { client, server in
            let first = try await client.execute(
                uri: "/v1/images", method: .post, headers: Self.pngType, body: ByteBuffer(bytes: ImageFixtures.png3x2))
            #expect(first.status == .created, "\(String(buffer: first.body))")
            let image = try first.object()
            let id = try #require(image["id"] as? String)
            #expect(image["object"] as? String == "image" && image["format"] as? String == "png")
            #expect(image["width"] as? Int == 3 && image["height"] as? Int == 2)
            #expect(first.headers[.location] == "/v1/images/\(id)")
            let again = try await client.execute(
                uri: "/v1/images", method: .post, headers: [.contentType: "application/octet-stream"],
                body: ByteBuffer(bytes: ImageFixtures.png3x2))
            #expect(try again.status == .ok && (again.object()["id"] as? String) == id)
            let (headers, body) = Self.form([], files: [("file", ImageFixtures.jpeg4x3Rotated6)])
            let form = try await client.execute(uri: "/v1/images", method: .post, headers: headers, body: body)
            #expect(try form.status == .created && (form.object()["width"] as? Int) == 3, "as shown: turned")
            let described = try await client.execute(uri: "/v1/images/\(id)", method: .get)
            #expect(
                try described.status == .ok && (described.object()["sha256"] as? String) == image["sha256"] as? String)
            let unknown = try await client.execute(
                uri: "/v1/images/img_\(String(repeating: "0", count: 64))", method: .get)
            #expect(unknown.status == .notFound)
            #expect(try await server.jobCount() == 0)
            // Both are in the job store, where every node reads them.
            #expect(
                try await server.store.imageBytes(sha256: #require(image["sha256"] as? String)) == ImageFixtures.png3x2)
            #expect(try await server.store.imageBytes(sha256: #require(form.object()["sha256"] as? String)) != nil)
        }
    }

    /// What a node of a cluster sees of an image another node took: in the job store, with no file here.
    @Test func anImageOnlyTheJobStoreHoldsIsDescribedAndNamedByIDAndCopiedHere() async throws {
        try await withServer { client, server in
            let elsewhere = ImageStore(
                directory: server.scheduler.configuration.images.directory
                    .deletingLastPathComponent().appendingPathComponent("elsewhere"))
            let (first, second) = (
                try elsewhere.put(ImageFixtures.png3x2), try elsewhere.put(ImageFixtures.webpLossy5x4)
            )
            #expect(try await server.store.putImage(first, bytes: ImageFixtures.png3x2, now: Date()))
            #expect(try await server.store.putImage(second, bytes: ImageFixtures.webpLossy5x4, now: Date()))
            let files = server.service.images
            #expect(!files.holds(sha256: first.sha256) && !files.holds(sha256: second.sha256))

            let described = try await client.execute(uri: "/v1/images/\(first.id)", method: .get)
            #expect(try described.status == .ok && (described.object()["width"] as? Int) == 3)
            #expect(FileManager.default.contents(atPath: files.url(for: first).path) == Data(ImageFixtures.png3x2))
            try FileManager.default.removeItem(at: files.url(for: first))
            let job = try await client.submit(#"{"prompt": "a lamp", "image": "\#(first.id)"}"#)
            #expect(job.status == .created, "\(String(buffer: job.body))")
            #expect(files.holds(sha256: first.sha256))
            let batch = try await client.execute(
                uri: "/v1/batches", method: .post, headers: [.contentType: "text/csv"],
                body: ByteBuffer(
                    string: "prompt,image\na lamp,\(second.id)\na kite,img_\(String(repeating: "e", count: 64))\n"))
            #expect(batch.status == .created, "\(String(buffer: batch.body))")
            let rejected = try #require(try batch.object()["rejected"] as? [[String: Any]])
            #expect(rejected.map { $0["row"] as? Int } == [3], "no store has the second row's image")
            #expect(
                FileManager.default.contents(atPath: files.url(for: second).path) == Data(ImageFixtures.webpLossy5x4))
        }
    }

    @Test func everyImageAJobNamesIsInTheJobStoreBeforeTheJobIsQueued() async throws {
        try await withServer { client, server in
            // Stored in this node's files only (as before the store kept images): the submission puts it there.
            let local = try server.service.images.put(ImageFixtures.png3x2)
            _ = try await client.submitJob(#"{"prompt": "a lamp", "image": "\#(local.id)"}"#)
            #expect(try await server.store.imageBytes(sha256: local.sha256) == ImageFixtures.png3x2)
            // A data: URL, and a form's file part.
            let dataURL = "data:image/webp;base64," + Data(ImageFixtures.webpLossy5x4).base64EncodedString()
            let byURL = try await client.submit(#"{"prompt": "a lamp", "image": "\#(dataURL)"}"#)
            let urlID = try #require(try byURL.object()["spec"] as? [String: Any])["image"] as? String
            #expect(try await server.store.imageBytes(sha256: String(#require(urlID).dropFirst(4))) != nil)
            let (headers, body) = Self.form(
                [("prompt", "a lamp")], files: [("image", ImageFixtures.pngExif5x2Rotated6)])
            let byFile = try await client.execute(uri: "/v1/jobs", method: .post, headers: headers, body: body)
            let fileID = try #require(try byFile.object()["spec"] as? [String: Any])["image"] as? String
            #expect(
                try await server.store.imageBytes(sha256: String(#require(fileID).dropFirst(4)))
                    == ImageFixtures.pngExif5x2Rotated6)
            // A batch's data: URL.
            let batchURL = "data:image/webp;base64," + Data(ImageFixtures.webpLossless6x2).base64EncodedString()
            let batch = try await client.execute(
                uri: "/v1/batches", method: .post, headers: [.contentType: "application/json"],
                body: ByteBuffer(string: #"{"jobs": [{"prompt": "a lamp", "image": "\#(batchURL)"}]}"#))
            #expect(batch.status == .created, "\(String(buffer: batch.body))")
            let batchJob = try #require(try (batch.object()["accepted"] as? [[String: Any]])?.first?["job"] as? String)
            let spec = try #require(try await server.store.job(id: batchJob)?.spec.image)
            #expect(try await server.store.imageBytes(sha256: spec.sha256) == ImageFixtures.webpLossless6x2)
        }
    }

    @Test func aBadImageIsA4xxNamingTheFieldAndStoresNothing() async throws {
        try await withServer { client, server in
            for (bytes, status) in [
                (Array(ImageFixtures.png3x2.dropLast(3)), HTTPResponse.Status.badRequest),
                (ImageFixtures.pngBomb100000x100000, .badRequest), (Array("not a picture".utf8), .badRequest),
            ] {
                let answer = try await client.execute(
                    uri: "/v1/images", method: .post, headers: Self.pngType, body: ByteBuffer(bytes: bytes))
                #expect(answer.status == status, "\(String(buffer: answer.body))")
                #expect(try answer.apiError()["field"] as? String == "body")
            }
            let (headers, body) = Self.form([], files: [("file", Array(ImageFixtures.webpLossy5x4.dropLast(2)))])
            let form = try await client.execute(uri: "/v1/images", method: .post, headers: headers, body: body)
            #expect(try form.status == .badRequest && (form.apiError()["field"] as? String) == "file")
            let text = try await client.execute(
                uri: "/v1/images", method: .post, headers: [.contentType: "text/plain"],
                body: ByteBuffer(bytes: ImageFixtures.png3x2))
            #expect(try text.status == .badRequest && (text.apiError()["field"] as? String) == "Content-Type")
            let folder = server.scheduler.configuration.images.directory.path
            #expect((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] == [])
        }
    }

    @Test func anImageLargerThanTheLimitIs413() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try TestServer(dataDirectory: directory.path, imageLimits: ImageLimits(maxBytes: 200))
            try await server.test { client in
                let answer = try await client.execute(
                    uri: "/v1/images", method: .post, headers: Self.pngType,
                    body: ByteBuffer(bytes: ImageFixtures.jpeg4x3Rotated6))
                #expect(answer.status == .contentTooLarge, "\(String(buffer: answer.body))")
            }
        }
    }

    @Test func aJobStartsFromAnImageByIDDataURLOrFile() async throws {
        try await withServer { client, _ in
            let upload = try await client.execute(
                uri: "/v1/images", method: .post, headers: Self.pngType, body: ByteBuffer(bytes: ImageFixtures.png3x2))
            let id = try #require(try upload.object()["id"] as? String)
            let byID = try await client.submit(#"{"prompt": "a lamp", "image": "\#(id)", "size": "auto"}"#)
            #expect(byID.status == .created, "\(String(buffer: byID.body))")
            let spec = try #require(try byID.object()["spec"] as? [String: Any])
            #expect(spec["image"] as? String == id && spec["fit"] as? String == "cover")
            #expect(spec["last_image"] is NSNull)
            #expect(spec["size"] as? String == "1280x704", "auto: a 3:2 picture is nearer 16:9 than square")

            let dataURL = "data:image/png;base64," + Data(ImageFixtures.png3x2).base64EncodedString()
            let byURL = try await client.submit(#"{"prompt": "a lamp", "image": "\#(dataURL)", "fit": "contain"}"#)
            let urlSpec = try #require(try byURL.object()["spec"] as? [String: Any])
            #expect(urlSpec["image"] as? String == id && urlSpec["fit"] as? String == "contain", "the same picture")

            let (headers, body) = Self.form(
                [("prompt", "a lamp"), ("steps", "2"), ("fit", "stretch")], files: [("image", ImageFixtures.png3x2)])
            let byFile = try await client.execute(uri: "/v1/jobs", method: .post, headers: headers, body: body)
            #expect(byFile.status == .created, "\(String(buffer: byFile.body))")
            let fileSpec = try #require(try byFile.object()["spec"] as? [String: Any])
            #expect(fileSpec["image"] as? String == id && fileSpec["steps"] as? Int == 2)
            #expect(fileSpec["fit"] as? String == "stretch")
        }
    }

    @Test func theImageIsPartOfTheIdempotencyDigest() async throws {
        try await withServer { client, _ in
            let one = "data:image/png;base64," + Data(ImageFixtures.png3x2).base64EncodedString()
            let two = "data:image/webp;base64," + Data(ImageFixtures.webpLossy5x4).base64EncodedString()
            let first = try await client.submit(#"{"prompt": "a lamp", "image": "\#(one)"}"#, key: "k-1")
            let same = try await client.submit(#"{"prompt": "a lamp", "image": "\#(one)"}"#, key: "k-1")
            let other = try await client.submit(#"{"prompt": "a lamp", "image": "\#(two)"}"#, key: "k-1")
            #expect(first.status == .created && same.status == .ok)
            #expect(other.status == .conflict, "another picture under the same key is another request")
        }
    }

    @Test func imagesOnAModelThatTakesNoneOrUnknownIDsAreRefused() async throws {
        try await withServer(model: "tiny:t2v-a14b") { client, server in
            let upload = try await client.execute(
                uri: "/v1/images", method: .post, headers: Self.pngType, body: ByteBuffer(bytes: ImageFixtures.png3x2))
            let id = try #require(try upload.object()["id"] as? String)
            let refused = try await client.submit(#"{"prompt": "a lamp", "image": "\#(id)"}"#)
            #expect(refused.status == .badRequest)
            let error = try refused.apiError()
            #expect(error["field"] as? String == "image")
            #expect((error["message"] as? String)?.contains("ti2v-5b, i2v-a14b") == true, "\(error)")
            let batch = try await client.execute(
                uri: "/v1/batches", method: .post, headers: [.contentType: "text/csv"],
                body: ByteBuffer(string: "prompt,image\na lamp,\(id)\na kite,\n"))
            #expect(batch.status == .created, "\(String(buffer: batch.body))")
            let rejected = try #require(try batch.object()["rejected"] as? [[String: Any]])
            #expect(rejected.count == 1 && rejected.first?["row"] as? Int == 2)
            #expect(rejected.first?["column"] as? String == "image")
            #expect(try await server.jobCount() == 1, "the row without an image still runs")
        }
        try await withServer { client, server in
            let unknown = try await client.submit(
                #"{"prompt": "a lamp", "image": "img_\#(String(repeating: "0", count: 64))"}"#)
            #expect(try unknown.status == .badRequest && (unknown.apiError()["field"] as? String) == "image")
            let path = try await client.submit(#"{"prompt": "a lamp", "image": "/etc/hostname"}"#)
            #expect(try path.status == .badRequest && (path.apiError()["field"] as? String) == "image")
            #expect(try await server.jobCount() == 0)
        }
    }

    @Test func openAIsInputReferenceIsTheImage() async throws {
        try await withServer { client, _ in
            let (headers, body) = Self.form(
                [("prompt", "a lamp"), ("model", "sora-2"), ("seconds", "1")],
                files: [("input_reference", ImageFixtures.png3x2)])
            let video = try await client.execute(uri: "/v1/videos", method: .post, headers: headers, body: body)
            #expect(video.status == .ok, "\(String(buffer: video.body))")
            let id = try #require(try video.object()["id"] as? String)
            let job = try await client.execute(uri: "/v1/jobs/\(id)", method: .get)
            let spec = try #require(try job.object()["spec"] as? [String: Any])
            #expect((spec["image"] as? String)?.hasPrefix("img_") == true)
            let (twice, twiceBody) = Self.form(
                [("prompt", "a lamp")],
                files: [("input_reference", ImageFixtures.png3x2), ("image", ImageFixtures.png3x2)])
            let both = try await client.execute(uri: "/v1/videos", method: .post, headers: twice, body: twiceBody)
            #expect(try both.status == .badRequest && (both.apiError()["param"] as? String) == "input_reference")
        }
    }

    @Test func theSweeperKeepsImagesJobsNameAndRemovesOldUnnamedOnes() async throws {
        try await withServer { client, server in
            let images = server.service.images
            let named = try await server.service.library.storeImage(ImageFixtures.png3x2, field: "body").reference
            let unnamed = try await server.service.library.storeImage(ImageFixtures.webpLossless6x2, field: "body")
                .reference
            _ = try await client.submitJob(#"{"prompt": "a lamp", "image": "\#(named.id)"}"#)
            for reference in [named, unnamed] {
                try FileManager.default.setAttributes(
                    [.modificationDate: Date().addingTimeInterval(-25 * 3600)],
                    ofItemAtPath: images.url(for: reference).path)
            }
            let sweeper = ImageSweeper(service: server.service, logger: TestSupport.logger)
            let now = Date()
            #expect(try await sweeper.sweep(now: now) == (files: 1, rows: 0), "the store's rows are not a day old")
            #expect(FileManager.default.fileExists(atPath: images.url(for: named).path))
            #expect(!FileManager.default.fileExists(atPath: images.url(for: unnamed).path))
            #expect(try await sweeper.sweep(now: now.addingTimeInterval(25 * 3600)) == (files: 0, rows: 1))
            #expect(try await server.store.imageBytes(sha256: unnamed.sha256) == nil)
            #expect(try await server.store.imageBytes(sha256: named.sha256) != nil, "a job names it")
        }
    }
}
