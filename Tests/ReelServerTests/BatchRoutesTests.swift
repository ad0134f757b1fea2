import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ReelCSV
import ReelCore
import ReelServer
import ReelStore
import ReelTestSupport
import Testing

extension TestClientProtocol {
    func postBatch(_ body: String, contentType: String = "text/csv", query: String = "") async throws -> TestResponse {
        try await execute(
            uri: "/v1/batches" + query, method: .post, headers: [.contentType: contentType],
            body: ByteBuffer(string: body))
    }
}

@Suite struct BatchRoutesTests {
    /// What real spreadsheets contain: a BOM, CRLF, quoted commas, quotes and line breaks, Chinese, blank lines.
    static let spreadsheet =
        "\u{FEFF}prompt,size,frames,steps,seed,style\r\n"
        + "\"a fox, running\",64x64,5,2,1,\r\n"
        + "\r\n"
        + "\"she said \"\"wow\"\"\r\nand left\",64x64,5,2,2,cinematic\r\n"
        + "bad size,65x64,5,2,3,\r\n"
        + "一只狐狸在雪地里,64x64,5,two,4,\r\n"
        + "水墨山水,64x64,9,2,5,ink-wash\r\n"

    @Test func validRowsAreQueuedAndBadOnesReportedByRowAndColumn() async throws {
        let server = try TestServer()
        try await server.test { client in
            let response = try await client.postBatch(Self.spreadsheet)
            #expect(response.status == .created, "\(String(buffer: response.body))")
            let body = try response.object()
            let accepted = try #require(body["accepted"] as? [[String: Any]])
            let rejected = try #require(body["rejected"] as? [[String: Any]])
            #expect(accepted.map { $0["row"] as? Int } == [2, 4, 7], "the blank line does not count as a row")
            #expect(rejected.map { $0["row"] as? Int } == [5, 6])
            #expect(rejected.map { $0["column"] as? String } == ["size", "steps"])
            #expect((rejected[0]["message"] as? String)?.contains("64x64") == true)

            let batchID = try #require(body["id"] as? String)
            let jobs = try await server.store.jobs(batchID: batchID)
            #expect(jobs.count == 3)
            let quoted = try #require(jobs.first { $0.spec.seed == 2 })
            #expect(quoted.spec.userPrompt == "she said \"wow\"\r\nand left")
            #expect(quoted.spec.style == "cinematic" && quoted.spec.prompt.contains("she said \"wow\""))
            #expect(quoted.spec.prompt != quoted.spec.userPrompt)
            let chinese = try #require(jobs.first { $0.spec.seed == 5 })
            #expect(chinese.spec.frames == 9 && chinese.spec.userPrompt == "水墨山水")
        }
    }

    @Test func atomicBatchesQueueNothingWhenARowIsBad() async throws {
        let server = try TestServer()
        try await server.test { client in
            let response = try await client.postBatch(Self.spreadsheet, query: "?atomic=true")
            #expect(response.status == .badRequest)
            let body = try response.object()
            #expect((body["rejected"] as? [Any])?.count == 2)
            #expect((body["error"] as? [String: Any])?["code"] as? String == "invalid_value")
            #expect(try await server.jobCount() == 0)
            let clean = try await client.postBatch("prompt\r\na\r\nb\r\n", query: "?atomic=true")
            #expect(clean.status == .created)
            #expect(try await server.jobCount() == 2)
        }
    }

    @Test func anUnknownColumnRejectsTheFileAndNamesIt() async throws {
        let server = try TestServer()
        try await server.test { client in
            let response = try await client.postBatch("prompt,colour\nfox,red\n")
            #expect(response.status == .badRequest)
            let error = try response.apiError()
            #expect(error["field"] as? String == "colour")
            #expect((error["message"] as? String)?.contains("unknown column 'colour'") == true)
            let noPrompt = try await client.postBatch("size\n64x64\n")
            #expect(try noPrompt.apiError()["field"] as? String == "prompt")
            let broken = try await client.postBatch("prompt\n\"never closed\n")
            #expect(broken.status == .badRequest)
            #expect(try await server.jobCount() == 0)
        }
    }

    @Test func jsonBatchesTakeDefaults() async throws {
        let server = try TestServer()
        try await server.test { client in
            let response = try await client.postBatch(
                #"{"defaults": {"size": "64x64", "steps": 2, "priority": 3}, "jobs": [{"prompt": "a"}, {"prompt": "b", "steps": 3, "size": "720p"}, {"prompt": "c", "steps": "x"}]}"#,
                contentType: "application/json")
            #expect(response.status == .created)
            let body = try response.object()
            #expect((body["rejected"] as? [[String: Any]])?.first?["column"] as? String == "steps")
            let jobs = try await server.store.jobs(batchID: try #require(body["id"] as? String))
            #expect(jobs.map(\.spec.steps).sorted() == [2, 3])
            #expect(jobs.allSatisfy { $0.priority == 3 })
            #expect(jobs.contains { $0.spec.size == "1280x704" }, "the 720p preset of TI2V-5B")
        }
    }

    @Test func aThousandRowsInOrder() async throws {
        let server = try TestServer()
        var csv = "prompt,seed\n"
        for index in 0..<1000 { csv += "\"clip \(index), take one\",\(index)\n" }
        try await server.test { [csv] client in
            let response = try await client.postBatch(csv)
            #expect(response.status == .created)
            let accepted = try #require(try response.object()["accepted"] as? [[String: Any]])
            #expect(accepted.count == 1000)
            #expect(accepted.last?["row"] as? Int == 1001)
            // Claimed in row order: same priority, oldest first.
            let first = try await server.store.claim(owner: "t", slot: "s", leaseExpiresAt: Date() + 60, now: Date())
            #expect(first?.job.spec.seed == 0)
        }
    }

    @Test func statusAndReportFollowTheJobs() async throws {
        let server = try TestServer()
        try await server.test { client in
            let submitted = try await client.postBatch("prompt,seed\nfirst,1\nsecond,2\nbad,-5\n")
            let id = try #require(try submitted.object()["id"] as? String)

            // Run the first job to success through the store, as a worker would.
            let (job, lease) = try #require(
                try await server.store.claim(owner: "n/s", slot: "s", leaseExpiresAt: Date() + 60, now: Date()))
            #expect(job.spec.seed == 1)
            let outputs = JobOutputs(
                directory: "/tmp/x", video: "/tmp/x/video.mp4", metadata: "/tmp/x/job.json",
                secondsPerStage: ["text_encoding": 0.1, "denoising": 1.5, "vae_decode": 0.2, "encoding": 0.3])
            #expect(try await server.store.complete(lease, outputs: outputs, now: Date() + 2))

            let status = try await client.execute(uri: "/v1/batches/\(id)", method: .get)
            #expect(status.status == .ok)
            let body = try status.object()
            #expect(body["total"] as? Int == 3)
            let counts = try #require(body["counts"] as? [String: Int])
            #expect(counts["succeeded"] == 1 && counts["queued"] == 1)
            #expect(body["done"] as? Bool == false)
            #expect((body["videos_per_hour"] as? Double ?? 0) > 0)
            #expect((body["seconds_left"] as? Double ?? 0) > 0)
            let rows = try #require(body["jobs"] as? [[String: Any]])
            #expect(rows.map { $0["state"] as? String } == ["succeeded", "queued"])
            #expect(rows[0]["video_url"] as? String == "/v1/jobs/\(job.id)/video")

            let report = try await client.execute(uri: "/v1/batches/\(id)/report.csv", method: .get)
            #expect(report.headers[.contentType]?.hasPrefix("text/csv") == true)
            let table = try CSVReader.parse(String(buffer: report.body))
            #expect(
                table.header == [
                    "row", "job_id", "state", "seed", "output", "text_encoding_s", "denoising_s",
                    "vae_decode_s", "encoding_s", "error",
                ])
            #expect(table.rows.map { $0.fields[2] } == ["succeeded", "queued", "rejected"])
            #expect(table.rows[0].fields[4] == "/tmp/x/video.mp4" && table.rows[0].fields[6] == "1.500")
            #expect(table.rows[2].fields[9].hasPrefix("seed: "))

            let missing = try await client.execute(uri: "/v1/batches/batch_nope", method: .get)
            #expect(missing.status == .notFound)
            let traversal = try await client.execute(uri: "/v1/batches/..%2F..%2Fetc%2Fpasswd", method: .get)
            #expect(traversal.status == .notFound)
        }
    }
}

/// Batches taken before manifests moved into the job store: their files in the data directory are imported when the
/// server starts.
@Suite struct LegacyBatchManifestTests {
    /// A manifest file exactly as earlier versions wrote it (`<data-dir>/batches/<id>.json`, dates in seconds).
    static let oldFile = #"""
        {"id":"batch_old1","created_at":1750000000.25,"source":"csv","accepted":[{"row":2,"job":"job_old_a"},{"row":4,"job":"job_old_b"}],"rejected":[{"row":3,"column":"size","message":"size '65x64' is not a multiple of 16"}]}
        """#

    @Test func aBatchWhoseManifestIsAnOldFileIsImportedAtStartAndStillReported() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "reel-legacy-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let batches = directory.appendingPathComponent("batches")
        try FileManager.default.createDirectory(at: batches, withIntermediateDirectories: true)
        let file = batches.appendingPathComponent("batch_old1.json")
        try Self.oldFile.write(to: file, atomically: true, encoding: .utf8)
        try "not json".write(to: batches.appendingPathComponent("broken.json"), atomically: true, encoding: .utf8)

        let server = try TestServer(dataDirectory: directory.path)
        // The jobs are in the store already, tagged with the batch, as the old versions queued them.
        let spec = GenerationSpec(
            prompt: "a kite", negativePrompt: "", width: 32, height: 32, frames: 5, fps: 24, steps: 2, guidance: 5,
            guidance2: nil, seed: 1, pngFrames: false, model: "tiny")
        for id in ["job_old_a", "job_old_b"] {
            _ = try await server.store.enqueue(NewJob(id: id, spec: spec, batchID: "batch_old1"), now: Date())
        }
        #expect(try await server.store.batch(id: "batch_old1") == nil)

        try await server.test { client in
            let status = try await client.execute(uri: "/v1/batches/batch_old1", method: .get)
            #expect(status.status == .ok, "\(String(buffer: status.body))")
            let body = try status.object()
            #expect(body["total"] as? Int == 3)
            #expect((body["jobs"] as? [[String: Any]])?.map { $0["id"] as? String } == ["job_old_a", "job_old_b"])
            #expect((body["rejected"] as? [[String: Any]])?.first?["column"] as? String == "size")
            #expect(body["created_at"] as? String == "2025-06-15T15:06:40.250Z")
            let report = try await client.execute(uri: "/v1/batches/batch_old1/report.csv", method: .get)
            let table = try CSVReader.parse(String(buffer: report.body))
            #expect(table.rows.map { $0.fields[2] } == ["queued", "rejected", "queued"])
        }
        let imported = try #require(try await server.store.batch(id: "batch_old1"))
        #expect(imported.accepted.map(\.job) == ["job_old_a", "job_old_b"] && imported.source == "csv")
        #expect(imported.createdAt == Date(timeIntervalSince1970: 1_750_000_000.25))
        // The file is left in place (an older reel still reads it), and a second start adds nothing.
        #expect(FileManager.default.fileExists(atPath: file.path))
        let again = ReelServerApplication(
            configuration: ReelServerConfiguration(port: 0), service: server.service, metrics: ReelMetricsRegistry(),
            logger: TestSupport.logger)
        try await again.application.test(.router) { client in
            let status = try await client.execute(uri: "/v1/batches/batch_old1", method: .get)
            #expect(status.status == .ok)
        }
        #expect(try await server.store.batch(id: "batch_old1") == imported)
    }
}
