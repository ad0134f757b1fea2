import Foundation
import ReelAPI
import ReelClient
import ReelTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `reel serve` as a real process under kills, stops and signals: the kill -9 of the server with the real engine
/// (tiny model), the rest with the scripted worker.
@Suite(.serialized) struct ServeFaultTests {
    static func spec(_ prompt: String, seed: Int = 1, steps: Int = 2) -> JobSubmission {
        JobSubmission(prompt: prompt, size: "32x32", frames: 5, steps: steps, seed: UInt64(seed))
    }

    func waitForTerminal(
        _ ids: [String], client: ReelAPIClient, timeout: Duration = .seconds(300)
    ) async throws
        -> [String: JobResource]
    {
        let deadline = ContinuousClock.now + timeout
        var done: [String: JobResource] = [:]
        while ContinuousClock.now < deadline {
            for id in ids where done[id] == nil {
                let job = try await client.job(id)
                if job.state.isTerminal { done[id] = job }
            }
            if done.count == ids.count { return done }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw ServerProcessError("jobs did not finish: \(ids.filter { done[$0] == nil })")
    }

    func videos(_ server: ServerProcess, _ id: String) -> [String] {
        let directory = server.dataDirectory.appendingPathComponent("outputs/\(id)").path
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".mp4") }
    }

    @Test func everyAcceptedJobSurvivesKillingTheServer() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try ServerProcess(devices: "cpu,cpu", dataDirectory: directory, worker: .real)
            defer { server.stop() }
            try await server.waitUntilReady()
            var ids: [String] = []
            for index in 0..<6 {
                ids.append(try await server.client.submit(Self.spec("a slow parade [slow]", seed: index, steps: 3)).id)
            }
            // Wait until work is under way, then kill -9 the server (its workers lose their parent).
            let deadline = ContinuousClock.now + .seconds(120)
            while ContinuousClock.now < deadline {
                if try await server.client.jobs(state: .running).data.count > 0 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            server.signal(SIGKILL)
            _ = try await server.waitForExit()
            try server.restart()
            try await server.waitUntilReady()
            let finished = try await waitForTerminal(ids, client: server.client)
            for id in ids {
                #expect(finished[id]?.state == .succeeded, "\(id): \(String(describing: finished[id]))")
                #expect(videos(server, id) == ["video.mp4"])
            }
        }
    }

    @Test func sigtermLetsJobsFinishWithinGraceThenLeavesThemQueued() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try ServerProcess(devices: "cpu", dataDirectory: directory, extraArguments: ["--grace", "1"])
            defer { server.stop() }
            try await server.waitUntilReady()
            let long = try await server.client.submit(Self.spec("an endless road [slow]", steps: 30)).id
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline, try await server.client.job(long).state != .running {
                try await Task.sleep(for: .milliseconds(100))
            }
            server.signal(SIGTERM)
            #expect(try await server.waitForExit(timeout: .seconds(30)) == 0)
            #expect(server.log.contains("shutting down"))
            // Back up: the job was left queued, its attempt not counted, and it now runs to the end.
            try server.restart()
            try await server.waitUntilReady()
            let queued = try await server.client.job(long)
            #expect(queued.state != .failed)
            let finished = try await waitForTerminal([long], client: server.client)
            #expect(finished[long]?.state == .succeeded)
            #expect(finished[long]?.attempts == 1, "the stopped attempt was not counted")
        }
    }

    @Test func sixtyJobsOverThreeWorkersWithFaultsEndExactlyOnce() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try ServerProcess(
                devices: "cpu,cpu,cpu", dataDirectory: directory, extraArguments: ["--stall-timeout", "20"],
                worker: TestSupport.soakWorker)
            defer { server.stop() }
            try await server.waitUntilReady()
            let client = server.client

            // Count every terminal event the server announces, per job.
            let terminal = Mutex<[String: Int]>([:])
            let listener = Task {
                for try await message in client.events()
                where ["succeeded", "failed", "cancelled"].contains(message.event) {
                    guard let id = message.update?.job else { continue }
                    terminal.withLock { $0[id, default: 0] += 1 }
                }
            }
            defer { listener.cancel() }
            try await Task.sleep(for: .milliseconds(300))

            var ids: [String] = []
            var poison: Set<String> = []
            for index in 0..<60 {
                let prompt = index % 20 == 7 ? "poisoned clip [crash]" : (index % 3 == 0 ? "clip [slow]" : "clip")
                let id = try await client.submit(Self.spec(prompt, seed: index)).id
                ids.append(id)
                if prompt.contains("[crash]") { poison.insert(id) }
            }
            // Chaos: kill -9 a busy worker now and then while the batch runs.
            let chaos = Task {
                for _ in 0..<4 {
                    try await Task.sleep(for: .seconds(4))
                    for worker in try await client.workers() where worker.state == .busy {
                        if let pid = worker.pid {
                            kill(-pid, SIGKILL)
                            break
                        }
                    }
                }
            }
            let finished = try await waitForTerminal(ids, client: client, timeout: .seconds(600))
            chaos.cancel()
            try await Task.sleep(for: .milliseconds(500))
            for id in ids {
                let job = finished[id]
                if poison.contains(id) {
                    #expect(job?.state == .failed, "the poisoned job fails after its attempts")
                    #expect(videos(server, id).isEmpty)
                } else {
                    #expect(job?.state == .succeeded, "\(id): \(String(describing: job))")
                    #expect(videos(server, id) == ["video.mp4"], "exactly one set of outputs for \(id)")
                }
            }
            let counts = terminal.withLock { $0 }
            #expect(
                ids.allSatisfy { counts[$0] == 1 }, "every job ends exactly once: \(counts.filter { $0.value != 1 })")
        }
    }
}
