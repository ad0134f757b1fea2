import Foundation
import ReelWorkerProtocol

/// What to do with a job whose attempt did not succeed. Pure: decided from the failure and the job alone.
public enum RetryDecision: Sendable, Equatable {
    /// Back to the queue; `memorySaving` asks the next attempt to use the engine's memory-saving settings.
    case retry(memorySaving: Bool)
    /// Failed for good, with the message the user sees.
    case fail(message: String)
}

/// Why an attempt ended without a result.
public enum AttemptFailure: Sendable, Equatable {
    /// The worker answered with an error event.
    case workerError(code: WorkerEvent.ErrorCode, message: String)
    /// The worker process died (crash, kill) or was killed for stalling.
    case workerDied(description: String)
}

public enum RetryPolicy {
    public static func decide(
        _ failure: AttemptFailure, attempts: Int, maxAttempts: Int, memorySaving: Bool
    ) -> RetryDecision {
        switch failure {
        case .workerError(let code, let message) where code == .outOfMemory:
            // One retry with VAE tiling and offload; then tell the user what to change.
            if !memorySaving && attempts < maxAttempts { return .retry(memorySaving: true) }
            return .fail(
                message: "out of memory even with the memory-saving settings (VAE tiling, model offload): \(message). "
                    + "Use a smaller size or fewer frames, or a GPU with more memory.")
        case .workerError(let code, let message) where code == .badRequest:
            return .fail(message: "the engine rejected the job: \(message)")
        case .workerError(let code, let message) where code == .diskFull:
            // Another attempt would fill the same disk: fail this job now; the slots wait for space before taking
            // the next (`--min-free-disk`).
            return .fail(message: "\(message). Free space on that file system; queued jobs wait until there is room.")
        case .workerError(let code, let message) where code == .outputUnwritable:
            return .fail(message: "\(message). Check that the output directory exists and is writable.")
        case .workerError(_, let message):
            if attempts < maxAttempts { return .retry(memorySaving: memorySaving) }
            return .fail(message: "failed after \(attempts) attempts; last error: \(message)")
        case .workerDied(let description):
            if attempts < maxAttempts { return .retry(memorySaving: memorySaving) }
            return .fail(message: "failed after \(attempts) attempts; the worker died each time (last: \(description))")
        }
    }
}

/// Exponential backoff between worker restarts: base, 2×base, 4×base … up to a ceiling.
public struct Backoff: Sendable, Equatable {
    public var base: Duration
    public var ceiling: Duration

    public init(base: Duration = .milliseconds(250), ceiling: Duration = .seconds(30)) {
        self.base = base
        self.ceiling = ceiling
    }

    /// The delay before restart number `failures` (1 for the first failure in a row); zero for none.
    public func delay(afterConsecutiveFailures failures: Int) -> Duration {
        guard failures > 0 else { return .zero }
        let factor = 1 << min(failures - 1, 20)
        let delay = base * factor
        return delay < ceiling ? delay : ceiling
    }
}
