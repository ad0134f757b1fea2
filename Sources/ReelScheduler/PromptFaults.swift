import ReelCore
import ReelStore
import ReelWorkerProtocol

/// Test-only fault injection chosen by markers in a job's prompt; used only when a server is started with
/// REEL_TEST_FAULTS=1 (and the engine then honours it only with REEL_ENGINE_ALLOW_FAULTS=1).
///
/// `[slow]` sleeps 0.4 s after each denoising step, `[crash]` exits the worker at step 1, `[crash-encoding]` exits it
/// while encoding, `[slow-encoding]` sleeps 2 s before writing the video, `[oom]` runs out of memory at step 1
/// unless the job runs with the memory-saving settings. `[crash-once]` and `[hang-once]` exit the worker, or make it
/// fall silent, at step 1 of the job's first attempt only.
public enum PromptFaults {
    public static let debugFields: @Sendable (Job) -> [String: JSONValue]? = { job in
        let prompt = job.spec.prompt
        var debug: [String: JSONValue] = [:]
        if prompt.contains("[slow]") { debug["step_delay"] = .number(0.4) }
        if prompt.contains("[crash]") { debug["crash_at_step"] = .number(1) }
        if prompt.contains("[crash-encoding]") { debug["crash_in"] = .string("encoding") }
        if prompt.contains("[slow-encoding]") { debug["encode_delay"] = .number(2) }
        if prompt.contains("[oom]") { debug["oom_at_step"] = .number(1) }
        if prompt.contains("[crash-once]") && job.attempts <= 1 { debug["crash_at_step"] = .number(1) }
        if prompt.contains("[hang-once]") && job.attempts <= 1 { debug["hang_at_step"] = .number(1) }
        return debug.isEmpty ? nil : debug
    }
}
