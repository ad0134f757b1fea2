import Logging
import ReelCore
import ReelStore
import ReelWorkerProtocol

/// What the slot's driver must do after the state machine has decided: every effect of a slot (a process, a store
/// call, a request to the worker, an event for clients, a metric, a log line) is one of these.
enum SlotAction: Sendable, Equatable {
    /// Start worker session `generation`: one process, or one per rank of a parallel group.
    case spawn(generation: Int)
    /// Kill every process of session `generation` and everything they started.
    case kill(generation: Int)
    /// Close the session's stdin so its workers exit on their own (a stop, not a failure).
    case closeInput(generation: Int)
    /// Take the next queued job from the store under a new lease (after checking the disk has room for it).
    case claim
    /// Clear the job's output directory (keeping a checkpoint when `keepCheckpoint`) and send its `generate` to every
    /// rank; `checkpoints`: ask the worker to save checkpoints.
    case run(Job, Lease, keepCheckpoint: Bool, checkpoints: Bool)
    /// Send a request (`cancel`, `prepare`) to every rank of the current session.
    case send(WorkerRequest)
    /// Extend the lease, recording the job's progress.
    case renew(Lease, progress: JobProgress?)
    /// Read from the store whether someone (on any node) asked to cancel the job.
    case checkCancel(jobID: String)
    /// Read the oldest queued jobs, so a split slot can prepare the next prompt.
    case readQueue
    /// Record how the job's attempt ended in the store (which publishes it), and in metrics if the store took it.
    case end(Job, Lease, JobEnd)
    /// Append a note to the job's event log (`resumed`, `checkpoint_rejected`); the store publishes it.
    case note(Job, Lease, kind: String, message: String)
    /// Publish the job's progress (through the store, which does not keep it).
    case progress(Job, Lease, JobProgress)
    /// The slot's denoising rate, for metrics.
    case stepsPerSecond(Double)
    /// The slot's worker is being restarted, for metrics.
    case workerRestarted
    case log(Logger.Level, String)
}

/// How one attempt of a job ended, as the slot decided it.
enum JobEnd: Sendable, Equatable {
    /// The worker wrote the job's files.
    case succeeded(JobOutputs)
    /// The attempt failed; with `retry` the job goes back to the queue (with the memory-saving settings when
    /// `memorySaving`), otherwise it fails for good with `message`.
    case failed(code: String, message: String, retry: Bool, memorySaving: Bool)
    /// The job was cancelled and its worker stopped it.
    case cancelled
    /// Back to the queue without counting the attempt: a shutdown stopped it, or it was claimed as the slot stopped.
    case released(reason: String)
}

/// Why the slot killed its worker while a job ran.
enum KillReason: Sendable, Equatable {
    case stalled(Duration)
    case shutdown
    case leaseLost
    /// Another rank of the slot's parallel group exited, failed or did not finish.
    case rankDied(String)
}
