import Foundation
import Logging
import Metrics
import ReelCore
import ReelStore
import ReelTestSupport
import ReelWorkerProtocol

@testable import ReelScheduler

#if canImport(Glibc)
    import Glibc
#endif

/// A scheduler with CPU worker processes (the scripted worker unless a test asks for the real engine with tiny
/// models) and a real store, plus ways to inject faults and wait for jobs.
///
/// Faults are asked for in the prompt (see `PromptFaults`); both workers honour the same hooks.
final class SchedulerHarness: Sendable {
    let scheduler: Scheduler
    let store: any JobStore
    let directory: URL
    private let task: Task<Void, any Error>

    init(
        slots: Int = 1, store: (any JobStore)? = nil, maxAttempts: Int = 3, stallTimeout: Duration = .seconds(60),
        grace: Duration = .seconds(30), model: String = "tiny", leaseDuration: Duration = .seconds(30),
        checkpointEvery: Int? = nil, slotList: [Slot]? = nil, relayout: Relayout? = nil,
        metrics: any MetricsFactory = NOOPMetricsHandler.instance, worker: TestSupport.Worker = .scripted,
        outputRoot: String? = nil, minFreeDiskBytes: Int64? = nil, environment: [String: String] = [:],
        configure: (inout SchedulerConfiguration) -> Void = { _ in }
    ) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("reel-sched-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // Tiny models are shared by every test; outputs are per harness.
        try? FileManager.default.createSymbolicLink(
            atPath: directory.appendingPathComponent("models").path,
            withDestinationPath: TestSupport.modelsDirectory)
        let store = try store ?? SQLiteJobStore(path: directory.appendingPathComponent("jobs.sqlite").path)
        self.store = store
        let slotList =
            slotList
            ?? (slots == 1
                ? [Slot(id: "cpu", device: "cpu")]
                : (1...slots).map { Slot(id: "cpu-\($0)", device: "cpu") })
        var configuration = SchedulerConfiguration(
            node: "test", slots: slotList, engine: TestSupport.engine(worker), model: model,
            dataDirectory: directory.path,
            maxAttempts: maxAttempts, stallTimeout: stallTimeout, leaseDuration: leaseDuration, grace: grace,
            backoff: Backoff(base: .milliseconds(100), ceiling: .seconds(1)),
            workerEnvironment: ["REEL_ENGINE_ALLOW_FAULTS": "1"].merging(environment) { _, new in new },
            checkpointEvery: checkpointEvery)
        configuration.relayout = relayout
        configuration.outputRoot = outputRoot
        configuration.minFreeDiskBytes = minFreeDiskBytes
        configure(&configuration)
        scheduler = Scheduler(
            configuration: configuration, store: store, metrics: SchedulerMetrics(factory: metrics),
            logger: TestSupport.logger, jobDebug: PromptFaults.debugFields)
        let scheduler = scheduler
        task = Task { try await scheduler.run() }
    }

    static func spec(_ prompt: String, seed: UInt64 = 1, steps: Int = 2, pngFrames: Bool = false) -> GenerationSpec {
        GenerationSpec(
            prompt: prompt, negativePrompt: "", width: 32, height: 32, frames: 5, fps: 24, steps: steps, guidance: 5.0,
            guidance2: nil, seed: seed, pngFrames: pngFrames, model: "tiny")
    }

    @discardableResult
    func submit(_ prompt: String, priority: Int = 0, steps: Int = 2, pngFrames: Bool = false) async throws -> Job {
        try await submit(Self.spec(prompt, steps: steps, pngFrames: pngFrames), priority: priority)
    }

    @discardableResult
    func submit(_ spec: GenerationSpec, priority: Int = 0) async throws -> Job {
        let (job, _) = try await store.enqueue(NewJob(spec: spec, priority: priority), now: Date())
        scheduler.jobsEnqueued()
        return job
    }

    /// Waits until `condition` holds for the job, checking as the store changes; fails after `timeout`.
    @discardableResult
    func waitFor(
        _ id: String, timeout: Duration = .seconds(120), _ condition: @escaping (Job) -> Bool
    ) async throws -> Job {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let job = try await store.job(id: id), condition(job) { return job }
            try await Task.sleep(for: .milliseconds(50))
        }
        let job = try await store.job(id: id)
        throw HarnessError(
            "timed out waiting on \(id); it is \(String(describing: job?.state)) attempts \(job?.attempts ?? -1)")
    }

    func waitForTerminal(_ id: String, timeout: Duration = .seconds(120)) async throws -> Job {
        try await waitFor(id, timeout: timeout) { $0.state.isTerminal }
    }

    /// The pid of the worker running `jobID`, once its denoising has reached `step`.
    func workerPID(
        running jobID: String, atStep step: Int = 1, stage: String = "denoising",
        timeout: Duration = .seconds(120)
    ) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let status = scheduler.workers.first(where: { $0.job == jobID }), let pid = status.pid,
                status.stage == stage, (status.step ?? 0) >= step
            {
                return pid
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw HarnessError("job \(jobID) never reached \(stage) step \(step)")
    }

    func waitUntilReady(timeout: Duration = .seconds(120)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if scheduler.isReady { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw HarnessError("no worker became ready")
    }

    func videos(of job: Job) -> [String] {
        let directory = scheduler.configuration.outputDirectory(jobID: job.id)
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".mp4") }
    }

    /// Shuts the scheduler down as SIGTERM would and waits for it; the store stays readable.
    func stop() async {
        scheduler.beginShutdown()
        _ = try? await task.value
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
