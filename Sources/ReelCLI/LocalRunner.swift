import ArgumentParser
import Foundation
import ReelWorker
import ReelWorkerProtocol

/// Runs work on one local worker for the CLI, and turns worker failures into messages for a person.
struct LocalRunner {
    let engine: EngineOptions

    func run<R: Sendable>(
        _ body: (WorkerConnection, inout AsyncStream<WorkerEvent>.Iterator) async throws -> R
    ) async throws -> R {
        let launch = try engine.launch()
        let verbose = engine.verbose
        printError("starting the \(launch.model) worker on \(launch.device) …")
        var forward: (@Sendable (String) -> Void)? = nil
        if verbose {
            forward = { @Sendable line in printError("engine: " + line) }
        }
        do {
            let (result, _) = try await WorkerProcess.run(
                launch, logger: engine.logger(), stderrHandler: forward
            ) { (connection: WorkerConnection) async throws -> R in
                var events = connection.events.makeAsyncIterator()
                let ready = try await connection.awaitReady(&events)
                printError(
                    "worker ready: \(ready.model) (\(ready.architecture), \(ready.dtype)) on \(ready.device)"
                        + (ready.randomWeights == true ? "; random weights, the output is noise" : ""))
                return try await body(connection, &events)
            }
            return result
        } catch let failure as WorkerFailure {
            printError("error: \(failure)")
            throw ExitCode(1)
        } catch let error as ExitCode {
            throw error
        } catch {
            printError(
                "error: could not run the engine worker with \(launch.engine.python): \(error). "
                    + "Run `make venv` in the Reel checkout or set REEL_PYTHON to a Python with reel_engine installed.")
            throw ExitCode(1)
        }
    }
}
