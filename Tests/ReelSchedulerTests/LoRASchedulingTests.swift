import Foundation
import ReelCore
import ReelStore
import ReelTestSupport
import Testing

@testable import ReelScheduler

/// LoRA jobs through the scheduler: the affinity claim with a worker process (the scripted one, then the real engine
/// with a tiny model once), the files a job names reaching the worker, and a node without a file.
@Suite(.serialized) struct LoRASchedulingTests {
    /// A tiny-model LoRA file in the harness's library, resolved as a job names it.
    static func lora(_ name: String, seed: UInt64, in library: URL, expert: LoRAExpert = .both) throws -> ResolvedLoRA {
        let url = try LoRAFixtures.write(
            LoRAFixtures.pairs(.tiny, rank: 4, layout: .kohya, seed: seed), name: name, in: library)
        let bytes = try Data(contentsOf: url)
        let entry = try #require(LoRALibrary(directory: library.path).catalog().entries.first { $0.name == name })
        #expect(entry.bytes == bytes.count)
        return ResolvedLoRA(name: name, sha256: entry.sha256, bytes: bytes.count, scale: 1, expert: expert)
    }

    static func spec(_ prompt: String, loras: [ResolvedLoRA], model: String = "tiny:t2v-a14b") -> GenerationSpec {
        var spec = GenerationSpec(
            prompt: prompt, negativePrompt: "", width: 32, height: 32, frames: 5, fps: 16, steps: 2, guidance: 5.0,
            guidance2: 5.0, seed: 3, pngFrames: false, model: model)
        spec.loras = loras.isEmpty ? nil : loras
        return spec
    }

    func metadata(_ job: Job) throws -> [String: Any] {
        let path = try #require(job.outputs?.metadata)
        return try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any]
            ?? [:]
    }

    @Test func anIdleSlotTakesTheJobsOfTheSetItHoldsFirst() async throws {
        let library = FileManager.default.temporaryDirectory.appendingPathComponent("reel-loras-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: library) }
        let a = try Self.lora("style_a", seed: 1, in: library)
        let b = try Self.lora("style_b", seed: 2, in: library, expert: .high)
        let harness = try SchedulerHarness(slots: 1, model: "tiny:t2v-a14b") {
            $0.loraDirectory = library.path
            $0.affinityWindow = .seconds(30)
        }
        // Queued in this order before the worker is ready: a, b, a, b, and one whose file this node lacks.
        var missing = b
        missing.name = "not_here"
        let jobs = try await harness.store.enqueueAll(
            [
                NewJob(id: "1-a", spec: Self.spec("one", loras: [a])),
                NewJob(id: "2-b", spec: Self.spec("two", loras: [b])),
                NewJob(id: "3-a", spec: Self.spec("three", loras: [a])),
                NewJob(id: "4-b", spec: Self.spec("four", loras: [b])),
                NewJob(id: "5-missing", spec: Self.spec("five", loras: [missing])),
            ], now: Date())
        harness.scheduler.jobsEnqueued()
        var ended: [Job] = []
        for job in jobs { ended.append(try await harness.waitForTerminal(job.id)) }
        await harness.stop()
        let ran = ended.filter { $0.state == .succeeded }.sorted { $0.startedAt! < $1.startedAt! }.map(\.id)
        #expect(ran == ["1-a", "3-a", "2-b", "4-b"], "the worker held a after 1-a, so 3-a went before 2-b")
        let lost = try #require(ended.last)
        #expect(lost.state == .failed && lost.errorCode == "lora_missing" && lost.attempts == 1)
        #expect(lost.errorMessage?.contains("not_here") == true, "\(lost.errorMessage ?? "")")
        // The worker read each file by its library path and recorded it by content.
        let record = try metadata(try #require(ended.first { $0.id == "2-b" }))
        let loras = try #require(record["loras"] as? [[String: Any]])
        #expect(
            loras.count == 1 && loras[0]["sha256"] as? String == b.sha256 && loras[0]["expert"] as? String == "high")
    }

    @Test func theRealEngineRunsTheRecipeWithALoRAPair() async throws {
        let library = FileManager.default.temporaryDirectory.appendingPathComponent("reel-loras-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: library) }
        let high = try Self.lora("lx_high", seed: 3, in: library, expert: .high)
        let low = try Self.lora("lx_low", seed: 4, in: library, expert: .low)
        let harness = try SchedulerHarness(slots: 1, model: "tiny:t2v-a14b", worker: .real) {
            $0.loraDirectory = library.path
        }
        var spec = Self.spec("a lighthouse at dusk", loras: [high, low])
        let recipe = Recipe.lightning4Step
        spec.steps = recipe.steps
        spec.guidance = recipe.guidance
        spec.guidance2 = recipe.guidance
        spec.recipe = recipe.rawValue
        spec.sampler = recipe.sampler
        let job = try await harness.submit(spec)
        let done = try await harness.waitForTerminal(job.id, timeout: .seconds(300))
        await harness.stop()
        #expect(done.state == .succeeded, "\(done.errorMessage ?? "")")
        let probe = try TestSupport.probeVideo(try #require(done.outputs?.video))
        #expect(probe.frames == 5 && probe.width == 32 && probe.height == 32)
        let record = try metadata(done)
        #expect(record["recipe"] as? String == "lightning-4step")
        let loras = try #require(record["loras"] as? [[String: Any]])
        #expect(loras.map { $0["sha256"] as? String } == [high.sha256, low.sha256])
        #expect(loras.map { $0["expert"] as? String } == ["high", "low"])
        let sampler = try #require(record["sampler"] as? [String: Any])
        #expect(sampler["denoising_steps"] as? [Int] == [1000, 750, 500, 250] && sampler["shift"] as? Double == 5)
        #expect(
            done.outputs?.secondsPerStage["lora_switch"] != nil && done.outputs?.secondsPerStage["lora_load"] != nil)
    }
}
