import Foundation
import ReelTestSupport
import ReelWorker
import ReelWorkerProtocol
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Real worker processes with the tiny model on CPU.
@Suite(.serialized) struct WorkerProcessTests {
    func request(_ job: String, in directory: URL, debug: [String: JSONValue]? = nil) -> WorkerRequest.Generate {
        WorkerRequest.Generate(
            job: job, prompt: "a red fox running through snow", negativePrompt: "blurry", width: 64, height: 96,
            frames: 9, steps: 3, guidance: 5.0, seed: 11, pngFrames: false,
            outDir: directory.appendingPathComponent(job).path, debug: debug)
    }

    @Test func generatesAVideoAndExitsWhenStdinCloses() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let (result, exit) = try await WorkerProcess.run(TestSupport.launch(), logger: TestSupport.logger) {
                connection in
                var events = connection.events.makeAsyncIterator()
                let ready = try await connection.awaitReady(&events)
                #expect(ready.protocol == WorkerCodec.protocolVersion)
                #expect(ready.device == "cpu" && ready.architecture == "ti2v-5b" && ready.dtype == "float32")
                #expect(ready.spatialStride == 32 && ready.fps == 24)
                var steps: [Int] = []
                let result = try await connection.generate(request("j1", in: directory), events: &events) {
                    if $0.stage == .denoising { steps.append($0.step) }
                }
                #expect(steps == [1, 2, 3])
                return result
            }
            #expect(exit.exitCode == 0, "the worker exits cleanly when stdin closes: \(exit)")
            let probe = try TestSupport.probeVideo(result.outputs.video)
            #expect(probe.frames == 9 && probe.width == 64 && probe.height == 96)
            #expect(probe.codec == "h264" && probe.pixelFormat == "yuv420p" && probe.fps == 24)
            #expect(FileManager.default.fileExists(atPath: result.outputs.metadata))
        }
    }

    @Test func cancelStopsTheJobAndTheWorkerServesTheNext() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let launch = TestSupport.launch(faults: true)
            _ = try await WorkerProcess.run(launch, logger: TestSupport.logger) { connection in
                var events = connection.events.makeAsyncIterator()
                _ = try await connection.awaitReady(&events)
                // 2 s a step: the cancel sent at step 1 reaches the worker's reader thread before step 3 even on a
                // loaded machine (0.5 s let a parallel test run finish the job first).
                let slow = request("slow", in: directory, debug: ["step_delay": .number(2)])
                let failure = await #expect(throws: WorkerFailure.self) {
                    try await connection.generate(slow, events: &events) { progress in
                        if progress.stage == .denoising && progress.step == 1 {
                            try? connection.send(.cancel(job: "slow"))
                        }
                    }
                }
                guard case .failed(let event) = failure else {
                    Issue.record("expected a cancelled error, got \(String(describing: failure))")
                    return
                }
                #expect(event.code == .cancelled)
                #expect(
                    !FileManager.default.fileExists(atPath: directory.appendingPathComponent("slow/video.mp4").path))
                let next = try await connection.generate(request("next", in: directory), events: &events)
                #expect(FileManager.default.fileExists(atPath: next.outputs.video))
            }
        }
    }

    @Test func killingTheGroupEndsTheEventStream() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let launch = TestSupport.launch(faults: true, worker: .scripted)
            let (pid, exit) = try await WorkerProcess.run(launch, logger: TestSupport.logger) { connection in
                var events = connection.events.makeAsyncIterator()
                _ = try await connection.awaitReady(&events)
                // 2 s a step: the cancel sent at step 1 reaches the worker's reader thread before step 3 even on a
                // loaded machine (0.5 s let a parallel test run finish the job first).
                let slow = request("slow", in: directory, debug: ["step_delay": .number(2)])
                let failure = await #expect(throws: WorkerFailure.self) {
                    try await connection.generate(slow, events: &events) { progress in
                        if progress.stage == .denoising { connection.killGroup() }
                    }
                }
                guard case .exited = failure else {
                    Issue.record("expected the worker to be gone, got \(String(describing: failure))")
                    return connection.pid
                }
                return connection.pid
            }
            #expect(exit.signal == SIGKILL)
            #expect(kill(pid, 0) != 0, "the worker process is gone")
        }
    }

    @Test func aCrashIsReportedWithTheWorkersLastWords() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let launch = TestSupport.launch(faults: true, worker: .scripted)
            let (_, exit) = try await WorkerProcess.run(launch, logger: TestSupport.logger) { connection in
                var events = connection.events.makeAsyncIterator()
                _ = try await connection.awaitReady(&events)
                let crashing = request("crash", in: directory, debug: ["crash_at_step": .number(2)])
                await #expect(throws: WorkerFailure.self) { try await connection.generate(crashing, events: &events) }
            }
            #expect(exit.exitCode == 70)
        }
    }

    @Test func aLineThatIsNotAnEventIsSkippedAndTheJobStillEnds() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let launch = TestSupport.launch(faults: true, worker: .scripted)
            let (result, _) = try await WorkerProcess.run(launch, logger: TestSupport.logger) { connection in
                var events = connection.events.makeAsyncIterator()
                _ = try await connection.awaitReady(&events)
                let garbled = request("garbled", in: directory, debug: ["malformed_output": .bool(true)])
                return try await connection.generate(garbled, events: &events)
            }
            #expect(FileManager.default.fileExists(atPath: result.outputs.video))
            #expect(try TestSupport.probeVideo(result.outputs.video).frames == result.outputs.frameCount)
        }
    }

    @Test func aMissingModelDirectoryFailsReadyWithItsName() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            var launch = TestSupport.launch(worker: .scripted)
            launch.model = directory.path
            let (failure, exit) = try await WorkerProcess.run(launch, logger: TestSupport.logger) { connection in
                var events = connection.events.makeAsyncIterator()
                do throws(WorkerFailure) {
                    _ = try await connection.awaitReady(&events)
                    return WorkerFailure?.none
                } catch {
                    return error
                }
            }
            guard case .failed(let event)? = failure else {
                Issue.record("expected a model_error, got \(String(describing: failure))")
                return
            }
            #expect(event.code == .modelError)
            #expect(event.message.contains("model_index.json"))
            #expect(exit.exitCode == 3)
        }
    }
}
