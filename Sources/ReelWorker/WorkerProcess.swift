import Foundation
import Logging
import ReelWorkerProtocol
import Subprocess
import Synchronization
import SystemPackage

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How a worker process ended.
public struct WorkerExit: Sendable, Equatable, CustomStringConvertible {
    /// The exit status, when it exited.
    public var exitCode: Int32?
    /// The signal that killed it, when one did.
    public var signal: Int32?
    /// The last lines it wrote to stderr, for error messages.
    public var stderrTail: [String]

    public init(exitCode: Int32?, signal: Int32?, stderrTail: [String]) {
        self.exitCode = exitCode
        self.signal = signal
        self.stderrTail = stderrTail
    }

    public var description: String {
        if let signal { return "killed by signal \(signal)" }
        return "exited with status \(exitCode ?? -1)"
    }

    public var succeeded: Bool { exitCode == 0 }
}

/// A live connection to one worker, valid inside `WorkerProcess.run`'s body.
public final class WorkerConnection: Sendable {
    /// The worker's process id; also its process group id, since it starts a session of its own.
    public let pid: Int32
    /// Decoded events, in order. The stream ends when the worker closes stdout (it exited or was killed).
    public let events: AsyncStream<WorkerEvent>
    let requests: AsyncStream<Data>.Continuation
    let tail: Mutex<[String]> = Mutex([])
    private let codec = WorkerCodec()

    init(pid: Int32, events: AsyncStream<WorkerEvent>, requests: AsyncStream<Data>.Continuation) {
        self.pid = pid
        self.events = events
        self.requests = requests
    }

    /// Queues one request for the worker's stdin.
    public func send(_ request: WorkerRequest) throws {
        let line = try codec.encodeLine(request)
        requests.yield(line)
    }

    /// Sends a signal to the worker's whole process group (the worker and anything it started).
    public func signalGroup(_ signal: Int32) {
        _ = kill(-pid, signal)
    }

    /// Kills the worker and everything it started, at once.
    public func killGroup() { signalGroup(SIGKILL) }

    /// The last lines the worker wrote to stderr.
    public var stderrTail: [String] { tail.withLock { $0 } }

    func appendStderr(_ line: String) {
        tail.withLock { lines in
            lines.append(line)
            if lines.count > 40 { lines.removeFirst(lines.count - 40) }
        }
    }
}

/// Starts engine workers (`python -m reel_engine.worker`) and speaks the worker protocol with them.
public enum WorkerProcess {
    /// Runs one worker for the duration of `body`. When `body` returns, the worker's stdin is closed so it exits;
    /// if it has not exited after `grace`, its process group is killed. If `body` throws, it is killed at once.
    public static func run<R: Sendable>(
        _ launch: WorkerLaunch,
        logger: Logger,
        grace: Duration = .seconds(10),
        stderrHandler: (@Sendable (String) -> Void)? = nil,
        body: (WorkerConnection) async throws -> R
    ) async throws -> (result: R, exit: WorkerExit) {
        var environment = ProcessInfo.processInfo.environment
        environment["PYTHONUNBUFFERED"] = "1"
        if let package = launch.engine.packageDirectory {
            environment["PYTHONPATH"] = [package, environment["PYTHONPATH"]].compactMap { $0 }.joined(separator: ":")
        }
        for (key, value) in launch.environment { environment[key] = value }
        var keyed: [Environment.Key: String] = [:]
        for (key, value) in environment { keyed[Environment.Key(stringLiteral: key)] = value }

        var options = PlatformOptions()
        options.createSession = true
        options.teardownSequence = [.gracefulShutDown(allowedDurationToNextStep: .seconds(2))]

        let executable: Executable =
            launch.engine.python.contains("/") ? .path(FilePath(launch.engine.python)) : .name(launch.engine.python)
        logger.debug(
            "starting worker", metadata: ["python": "\(launch.engine.python)", "arguments": "\(launch.arguments)"])

        let codec = WorkerCodec()
        let outcome = try await Subprocess.run(
            executable, arguments: Arguments(launch.arguments), environment: .custom(keyed),
            platformOptions: options, input: .inputWriter, output: .sequence, error: .sequence
        ) { execution -> (R, [String]) in
            let pid = execution.processIdentifier.value
            let (events, eventSink) = AsyncStream<WorkerEvent>.makeStream()
            let (requests, requestSink) = AsyncStream<Data>.makeStream()
            let connection = WorkerConnection(pid: pid, events: events, requests: requestSink)
            // Whatever happens, nothing the worker started outlives this scope.
            defer { connection.killGroup() }

            return try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    var splitter = LineSplitter()
                    for try await buffer in execution.standardOutput {
                        let lines = buffer.withUnsafeBytes { splitter.feed($0) }
                        for line in lines where !line.isEmpty {
                            do {
                                eventSink.yield(try codec.decodeEvent(line))
                            } catch {
                                logger.warning("worker \(pid) wrote a line that is not an event: \(line.prefix(200))")
                            }
                        }
                    }
                    eventSink.finish()
                }
                group.addTask {
                    var splitter = LineSplitter(maxLineBytes: 64 << 10)
                    for try await buffer in execution.standardError {
                        for line in buffer.withUnsafeBytes({ splitter.feed($0) }) {
                            connection.appendStderr(line)
                            stderrHandler?(line)
                        }
                    }
                    if let rest = splitter.finish() { connection.appendStderr(rest) }
                }
                group.addTask {
                    let writer = execution.standardInputWriter
                    for await line in requests {
                        do {
                            _ = try await writer.write(Array(line))
                        } catch {
                            break  // The worker is gone; its exit is reported through the event stream.
                        }
                    }
                    try? await writer.finish()
                }

                let result: R
                do {
                    result = try await body(connection)
                } catch {
                    connection.killGroup()
                    requestSink.finish()
                    try? await group.waitForAll()
                    throw error
                }
                requestSink.finish()
                // Give the worker `grace` to exit on its own after stdin closes, then kill it: the three pipe tasks
                // end when it has exited; the fourth kills it if they have not by then.
                group.addTask {
                    try await Task.sleep(for: grace)
                    logger.warning("worker \(pid) did not exit within \(grace) of closing stdin; killing it")
                    connection.killGroup()
                }
                var open = 3
                while open > 0 {
                    do {
                        guard try await group.next() != nil else { break }
                    } catch {}
                    open -= 1
                }
                group.cancelAll()
                try? await group.waitForAll()
                return (result, connection.stderrTail)
            }
        }
        let status = outcome.terminationStatus
        let (result, tail) = outcome.closureResult
        var exit = WorkerExit(exitCode: nil, signal: nil, stderrTail: tail)
        switch status {
        case .exited(let code): exit.exitCode = Int32(code)
        case .signaled(let signal): exit.signal = Int32(signal)
        }
        return (result, exit)
    }
}
