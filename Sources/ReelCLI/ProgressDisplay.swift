import Foundation
import ReelCore
import ReelScheduler
import ReelStore
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Draws a job's progress on stderr: a redrawn bar on a terminal, a line per stage otherwise.
final class ProgressDisplay: @unchecked Sendable {
    private let label: String
    private let interactive = isatty(STDERR_FILENO) != 0
    private let start = ContinuousClock.now
    private var lastStage: String?

    init(label: String) { self.label = label }

    func update(_ progress: JobProgress) {
        let elapsed = (ContinuousClock.now - start).seconds
        if interactive {
            let fraction = progress.total > 0 ? Double(progress.step) / Double(progress.total) : 0
            let width = 24
            let filled = Int((fraction * Double(width)).rounded())
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            let line = "\(label) [\(bar)] \(progress.stage) \(progress.step)/\(progress.total) "
                + String(format: "%.1fs", elapsed)
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
        } else if progress.stage != lastStage || progress.step == progress.total {
            printError("\(label) \(progress.stage) \(progress.step)/\(progress.total) " + String(format: "%.1fs", elapsed))
        }
        lastStage = progress.stage
    }

    func finish() {
        if interactive { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

/// Draws a local batch's progress and each slot's work on stderr: redrawn in place on a terminal, a line per finished
/// job otherwise. Updated from the local queue's events and slot changes.
final class BatchDisplay: Sendable {
    private struct State {
        var finished: [String: String] = [:]
        var succeeded = 0
        var lastLines = 0
    }
    private let total: Int
    private let interactive = isatty(STDERR_FILENO) != 0
    private let start = ContinuousClock.now
    private let state = Mutex(State())

    init(total: Int) { self.total = total }

    func update(_ event: JobUpdate?, workers: [WorkerStatus]) {
        state.withLock { state in
            if let event, event.state.isTerminal, state.finished[event.job] == nil {
                state.finished[event.job] = event.state.rawValue
                if event.state == .succeeded { state.succeeded += 1 }
                if !interactive { printError("\(event.job): \(event.state.rawValue) (\(state.finished.count)/\(total))") }
            }
            guard interactive else { return }
            let elapsed = (ContinuousClock.now - start).seconds
            var head = "[" + Self.bar(state.finished.count, total) + "] \(state.finished.count)/\(total)"
            if state.succeeded > 0 && elapsed > 0 {
                let rate = Double(state.succeeded) / elapsed
                head += String(format: ", %.0f videos/h, %.0f s left", rate * 3600, Double(total - state.finished.count) / rate)
            }
            var lines = [head]
            for worker in workers {
                var line = "  \(worker.slot): \(worker.state.rawValue)"
                if let job = worker.job { line += " \(job)" }
                if let stage = worker.stage, let step = worker.step, let total = worker.totalSteps {
                    line += " \(stage) \(step)/\(total)"
                }
                if let waiting = worker.waiting { line += " (\(waiting))" }
                lines.append(line)
            }
            let up = state.lastLines > 0 ? "\u{1B}[\(state.lastLines)A" : ""
            FileHandle.standardError.write(Data((up + lines.map { "\u{1B}[K" + $0 }.joined(separator: "\n") + "\n").utf8))
            state.lastLines = lines.count
        }
    }

    func finish() {}

    static func bar(_ done: Int, _ total: Int) -> String {
        let width = 30
        let filled = total > 0 ? done * width / total : width
        return String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
    }
}
