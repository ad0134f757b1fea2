import ReelWorkerProtocol

/// Why a conversation with a worker ended without the expected answer.
public enum WorkerFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// The worker closed stdout (it exited, crashed or was killed) before answering.
    case exited(stderrTail: [String])
    /// The worker answered with an error event.
    case failed(WorkerEvent.Failure)
    /// The worker speaks another protocol version.
    case protocolMismatch(worker: Int, expected: Int)

    public var description: String {
        switch self {
        case .exited(let tail):
            let last = tail.suffix(5).joined(separator: "\n  ")
            return "the worker exited unexpectedly" + (last.isEmpty ? "" : "; its last log lines:\n  \(last)")
        case .failed(let failure): return "\(failure.code): \(failure.message)"
        case .protocolMismatch(let worker, let expected):
            return "the worker speaks protocol \(worker) but this reel speaks \(expected); install matching versions"
        }
    }
}

extension WorkerConnection {
    /// Waits for the `ready` event that follows model loading.
    public func awaitReady(
        _ events: inout AsyncStream<WorkerEvent>.Iterator
    ) async throws(WorkerFailure)
        -> WorkerEvent.Ready
    {
        while let event = await events.next() {
            switch event {
            case .ready(let ready):
                guard ready.protocol == WorkerCodec.protocolVersion else {
                    throw .protocolMismatch(worker: ready.protocol, expected: WorkerCodec.protocolVersion)
                }
                return ready
            case .error(let failure):
                throw .failed(failure)
            default:
                continue
            }
        }
        throw .exited(stderrTail: stderrTail)
    }

    /// Sends one `generate` request and follows its events until its result or error.
    public func generate(
        _ request: WorkerRequest.Generate,
        events: inout AsyncStream<WorkerEvent>.Iterator,
        onProgress: (WorkerEvent.Progress) -> Void = { _ in }
    ) async throws(WorkerFailure) -> WorkerEvent.Result {
        do {
            try send(.generate(request))
        } catch {
            throw .failed(.init(job: request.job, code: .internal, message: "could not encode the request: \(error)"))
        }
        while let event = await events.next() {
            switch event {
            case .progress(let progress) where progress.job == request.job:
                onProgress(progress)
            case .result(let result) where result.job == request.job:
                return result
            case .error(let failure) where failure.job == request.job || failure.job == nil:
                throw .failed(failure)
            default:
                continue
            }
        }
        throw .exited(stderrTail: stderrTail)
    }
}
