import Foundation
import ReelAPI
import ReelCore
import Testing

/// The `ReelAPI` wire types carry exactly the keys docs/openapi.json documents for their schemas: each value below
/// sets every field, so an encoded key missing from the document, or a documented key no type writes, is a
/// mismatch between the types and the published contract.
@Suite struct WireContractTests {
    static let at = Date(timeIntervalSince1970: 1_750_000_000)
    static let progress = JobResource.Progress(stage: "denoising", step: 3, total: 8, percent: 37.5)
    static let job = JobResource(
        id: "job_1", state: .succeeded, progress: progress,
        spec: .init(
            prompt: "a fox", negativePrompt: "", size: "64x64", width: 64, height: 64, frames: 5, fps: 24, seconds: 0.2,
            steps: 2, guidance: 5, guidance2: 3, seed: 7, model: "tiny", pngFrames: true, style: "cinematic",
            userPrompt: "fox", interpolate: 2, outputFrames: 9, outputFPS: 48, requestedSeconds: 0.2),
        priority: 1, attempts: 1, cancelRequested: false, createdAt: at, startedAt: at, finishedAt: at,
        error: .init(code: "failed", message: "no"),
        outputs: .init(videoURL: "/v1/jobs/job_1/video", frameCount: 5, secondsPerStage: ["total": 1]),
        batchID: "batch_1", node: "a")
    static let rejected = RejectedRow(row: 3, column: "size", message: "bad")

    static func schema(_ name: String) throws -> [String: Any] {
        let components = try #require(try OpenAPITests.document()["components"] as? [String: Any])
        return try #require((components["schemas"] as? [String: Any])?[name] as? [String: Any], "no schema \(name)")
    }

    static func properties(_ schema: [String: Any]) throws -> Set<String> {
        Set(try #require(schema["properties"] as? [String: Any]).keys)
    }

    static func keys(_ value: some Encodable) throws -> Set<String> {
        let object = try JSONSerialization.jsonObject(with: WireJSON.makeEncoder().encode(value))
        return Set(try #require(object as? [String: Any]).keys)
    }

    @Test func aJobHasEveryDocumentedKeyAndNoOther() throws {
        let schema = try Self.schema("Job")
        #expect(try Self.keys(Self.job) == Self.properties(schema))
        #expect(try Self.keys(Self.job.spec) == Self.properties(Self.schema("Spec")))
        #expect(try Self.keys(Self.progress) == Self.properties(Self.schema("Progress")))
        let outputs = try #require((schema["properties"] as? [String: Any])?["outputs"] as? [String: Any])
        let documented = try #require((outputs["anyOf"] as? [[String: Any]])?.first)
        #expect(try Self.keys(Self.job.outputs) == Self.properties(documented))
        #expect(try Self.keys(JobPage(data: [Self.job], next: nil)) == Self.properties(Self.schema("JobPage")))
    }

    @Test func anEventBatchStyleErrorAndStatusHaveTheirDocumentedKeys() throws {
        let events = try Self.schema("JobEventList")
        let event = try #require(((events["properties"] as? [String: Any])?["data"] as? [String: Any])?["items"])
        #expect(
            try Self.keys(JobEventResource(job: "job_1", sequence: 1, at: Self.at, kind: "queued", message: "m"))
                == Self.properties(try #require(event as? [String: Any])))

        let batch = BatchResource(
            id: "batch_1", createdAt: Self.at, total: 2, counts: ["queued": 1],
            jobs: [.init(row: 2, id: "job_1", state: .failed, progress: Self.progress, videoURL: "/v", error: "no")],
            rejected: [Self.rejected], done: false, videosPerHour: 1, secondsLeft: 1)
        let batchSchema = try Self.schema("Batch")
        #expect(try Self.keys(batch) == Self.properties(batchSchema))
        let row = try #require(((batchSchema["properties"] as? [String: Any])?["jobs"] as? [String: Any])?["items"])
        #expect(try Self.keys(batch.jobs[0]) == Self.properties(try #require(row as? [String: Any])))
        #expect(try Self.keys(Self.rejected) == Self.properties(Self.schema("RejectedRow")))
        let submitted = BatchSubmitted(
            id: nil, queued: false, accepted: [.init(row: 2, job: "job_1")], rejected: [Self.rejected],
            error: .init(code: "invalid_value", message: "no", field: "size"))
        #expect(try Self.keys(submitted) == Self.properties(Self.schema("BatchSubmitted")))

        let style = StyleResource(name: "s", prompt: "{prompt}", negativePrompt: "", labelZH: nil)
        #expect(try Self.keys(style) == Self.properties(Self.schema("Style")))
        #expect(try Self.keys(DataList(data: [style])) == Self.properties(Self.schema("StyleList")))
        #expect(try Self.keys(HealthStatus(status: "ok")) == Self.properties(Self.schema("Status")))
        let image = ImageResource(ImageReference(sha256: "ab", format: .webp, width: 2, height: 3))
        #expect(try Self.keys(image) == Self.properties(Self.schema("Image")))
        let lora = LoRAResource(
            name: "a", bytes: 1, sha256: String(repeating: "0", count: 64), format: nil, rank: nil, dim: nil,
            blocks: nil, architectures: nil, fitsServer: false, error: "bad")
        #expect(try Self.keys(lora) == Self.properties(Self.schema("LoRA")))
        #expect(try Self.keys(DataList(data: [lora])) == Self.properties(Self.schema("LoRAList")))
        let error = ErrorBody(error: .init(code: "not_found", message: "no", field: nil))
        let errorSchema = try Self.schema("Error")
        #expect(try Self.keys(error) == Self.properties(errorSchema))
        let detail = try #require((errorSchema["properties"] as? [String: Any])?["error"] as? [String: Any])
        #expect(try Self.keys(error.error) == Self.properties(detail))
    }

    @Test func aSubmissionHasTheDocumentedFieldsOfAJobSpec() throws {
        let submission = JobSubmission(
            prompt: "a fox", negativePrompt: "", style: "cinematic", size: "64x64", seconds: 1, frames: 5, steps: 2,
            guidance: 5, seed: 7, model: "tiny", pngFrames: true, priority: 1, fps: 24, interpolate: 2,
            image: "img_0", lastImage: "img_1", fit: "cover", loras: [LoRARequest(name: "a", scale: 1, expert: "high")],
            recipe: "lightning-4step", recipeLoRAs: RecipeLoRAPair(high: "h", low: "l"))
        #expect(try Self.keys(submission) == Self.properties(Self.schema("JobSpecInput")))
        #expect(Set(JobSubmission.knownFields) == (try Self.properties(Self.schema("JobSpecInput"))))
    }

    @Test func aSlotCarriesEveryDocumentedKeyOfAWorker() throws {
        let slot = WorkerResource(
            slot: "cuda:0", node: "a", device: "cuda:0", placement: "replica", state: .busy, pid: 1, job: "job_1",
            restarts: 0, since: "2025-06-01T12:00:00.123Z", nodeURL: "http://a", stale: false)
        let schema = try Self.schema("Worker")
        // The document names the keys every slot may have; the rest (steps, memory, ranks, …) are extras it allows.
        #expect(try Self.properties(schema).subtracting(Self.keys(slot)) == [])
        let required = Set(try #require(schema["required"] as? [String]))
        #expect(required.subtracting(try Self.keys(WorkerResource(slot: "cpu", state: .ready))) == [])
    }
}
