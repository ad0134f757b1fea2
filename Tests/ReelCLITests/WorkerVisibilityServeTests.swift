import Foundation
import ReelAPI
import ReelClient
import ReelTestSupport
import ReelWorkerProtocol
import Testing

/// `GET /v1/workers` of a single `reel serve` behind API keys (scripted worker): a slot busy with another key's job
/// shows neither the job's id nor its progress.
@Suite struct WorkerVisibilityServeTests {
    @Test func aKeySeesASlotBusyWithAnotherKeysJobButNotTheJob() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let (mine, theirs) = ("key-a-\(UUID().uuidString)", "key-b-\(UUID().uuidString)")
            let keyFile = directory.appendingPathComponent("keys.txt")
            try "\(mine)\n\(theirs)\n".write(to: keyFile, atomically: true, encoding: .utf8)
            let server = try ServerProcess(
                dataDirectory: directory.appendingPathComponent("server"),
                extraArguments: ["--api-key-file", keyFile.path])
            defer { server.stop() }
            try await server.waitUntilReady(apiKey: mine)
            var owner = server.client
            owner.apiKey = theirs
            var other = server.client
            other.apiKey = mine
            let spec = JobSubmission(prompt: "a slow tide [slow]", size: "32x32", frames: 5, steps: 40, seed: 1)
            let id = try await owner.submit(spec).id

            // Read raw, as a client would: a field left out and a field that is null both hide it.
            func slots(_ client: ReelAPIClient) async throws -> [[String: Any]] {
                let body = try await client.send(.GET, "/v1/workers")
                let object = try JSONSerialization.jsonObject(with: body) as? [String: Any]
                return object?["data"] as? [[String: Any]] ?? []
            }
            // Catch a moment when the owner sees its job denoising and the other key, asked right after, sees the
            // slot still busy with it.
            var busy: [String: Any]?
            let deadline = ContinuousClock.now + .seconds(120)
            while busy == nil, ContinuousClock.now < deadline {
                if try await slots(owner).contains(where: { $0["job"] as? String == id && $0["step"] is Int }),
                    let slot = try await slots(other).first, slot["state"] as? String == "busy"
                {
                    busy = slot
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            let seen = try #require(busy, "the job never ran: \(server.log.suffix(2000))")
            #expect(seen["state"] as? String == "busy", "\(seen)")
            for field in ["job", "stage", "step", "total_steps", "steps_per_second"] {
                #expect(seen[field] == nil || seen[field] is NSNull, "the other key sees \(field): \(seen)")
            }
            let text = String(decoding: try await other.send(.GET, "/v1/workers"), as: UTF8.self)
            #expect(!text.contains(id))
        }
    }
}
