import ReelCore
import ReelWorkerProtocol
import Testing

@testable import ReelScheduler

@Suite struct PolicyTests {
    @Test func crashesAreRetriedUntilTheAttemptsRunOut() {
        let died = AttemptFailure.workerDied(description: "killed by signal 9")
        #expect(
            RetryPolicy.decide(died, attempts: 1, maxAttempts: 3, memorySaving: false) == .retry(memorySaving: false))
        #expect(RetryPolicy.decide(died, attempts: 2, maxAttempts: 3, memorySaving: true) == .retry(memorySaving: true))
        guard case .fail(let message) = RetryPolicy.decide(died, attempts: 3, maxAttempts: 3, memorySaving: false)
        else {
            Issue.record("the third crash must fail the job")
            return
        }
        #expect(message.contains("3 attempts") && message.contains("signal 9"))
    }

    @Test func outOfMemoryIsRetriedOnceWithMemorySaving() {
        let oom = AttemptFailure.workerError(code: .outOfMemory, message: "CUDA out of memory")
        #expect(RetryPolicy.decide(oom, attempts: 1, maxAttempts: 3, memorySaving: false) == .retry(memorySaving: true))
        guard case .fail(let message) = RetryPolicy.decide(oom, attempts: 2, maxAttempts: 3, memorySaving: true) else {
            Issue.record("a second out-of-memory must fail")
            return
        }
        #expect(message.contains("smaller size") && message.contains("VAE tiling"))
    }

    @Test func aFullOrUnwritableDiskFailsTheJobAtOnceNamingThePath() {
        let full = AttemptFailure.workerError(
            code: .diskFull, message: "cannot write the video /out/j/video.mp4: No space left on device (ENOSPC)")
        guard case .fail(let message) = RetryPolicy.decide(full, attempts: 1, maxAttempts: 3, memorySaving: false)
        else {
            Issue.record("a full disk is not retried")
            return
        }
        #expect(message.contains("/out/j/video.mp4") && message.contains("Free space"))
        let readOnly = AttemptFailure.workerError(
            code: .outputUnwritable, message: "cannot write the job directory /out/j: Read-only file system (EROFS)")
        guard case .fail(let why) = RetryPolicy.decide(readOnly, attempts: 1, maxAttempts: 3, memorySaving: false)
        else {
            Issue.record("an unwritable directory is not retried")
            return
        }
        #expect(why.contains("/out/j") && why.contains("writable"))
    }

    @Test func badRequestsAreNotRetried() {
        let bad = AttemptFailure.workerError(code: .badRequest, message: "frames must be 4n+1")
        #expect(
            RetryPolicy.decide(bad, attempts: 1, maxAttempts: 3, memorySaving: false)
                == .fail(message: "the engine rejected the job: frames must be 4n+1"))
    }

    @Test func backoffDoublesUpToItsCeiling() {
        let backoff = Backoff(base: .milliseconds(250), ceiling: .seconds(2))
        #expect(backoff.delay(afterConsecutiveFailures: 0) == .zero)
        #expect(backoff.delay(afterConsecutiveFailures: 1) == .milliseconds(250))
        #expect(backoff.delay(afterConsecutiveFailures: 3) == .seconds(1))
        #expect(backoff.delay(afterConsecutiveFailures: 4) == .seconds(2))
        #expect(backoff.delay(afterConsecutiveFailures: 60) == .seconds(2))
    }

    @Test func slotPlans() throws {
        #expect(try SlotPlan.parse("auto", cudaDeviceCount: { 0 }) == [Slot(id: "cpu", device: "cpu")])
        #expect(try SlotPlan.parse("auto", cudaDeviceCount: { 2 }).map(\.id) == ["cuda:0", "cuda:1"])
        #expect(try SlotPlan.parse("cpu,cpu,cpu").map(\.id) == ["cpu-1", "cpu-2", "cpu-3"])
        #expect(try SlotPlan.parse("cuda:1, cuda:3").map(\.device) == ["cuda:1", "cuda:3"])
        // Two replicas sharing one GPU, told apart by their slot names.
        #expect(try SlotPlan.parse("cuda:0,cuda:0").map(\.id) == ["cuda:0-1", "cuda:0-2"])
        #expect(try SlotPlan.parse("cuda:0,cuda:0").map(\.device) == ["cuda:0", "cuda:0"])
        #expect(try SlotPlan.parse("cuda:0,cuda:1,cuda:0").map(\.id) == ["cuda:0-1", "cuda:1", "cuda:0-2"])
        #expect(throws: SlotPlanError.self) { try SlotPlan.parse("tpu:0") }
        #expect(throws: SlotPlanError.self) { try SlotPlan.parse("") }
    }
}
