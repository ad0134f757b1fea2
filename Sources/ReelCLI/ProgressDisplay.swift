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
            let line =
                "\(label) [\(Self.bar(step: progress.step, total: progress.total))] "
                + "\(progress.stage) \(progress.step)/\(progress.total) "
                + String(format: "%.1fs", elapsed)
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
        } else if progress.stage != lastStage || progress.step == progress.total {
            printError(
                "\(label) \(progress.stage) \(progress.step)/\(progress.total) " + String(format: "%.1fs", elapsed))
        }
        lastStage = progress.stage
    }

    func finish() {
        if interactive { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }

    /// A job's bar: `width` cells, filled by the share of the stage done, to the nearest cell. Whatever the numbers
    /// of an event: a step past the total fills it, a negative step or a total of zero or below leaves it empty.
    static func bar(step: Int, total: Int, width: Int = 24) -> String {
        guard total > 0 else { return progressBarCells(0, of: width) }
        // Clamped first, so the share is in 0…1 and the product in 0…width.
        let share = Double(min(max(step, 0), total)) / Double(total)
        return progressBarCells(Int((share * Double(width)).rounded()), of: width)
    }
}

/// `width` cells of a text progress bar, the first `filled` of them (clamped to 0…width) marked `#`.
func progressBarCells(_ filled: Int, of width: Int) -> String {
    let width = max(width, 0)
    let filled = min(max(filled, 0), width)
    return String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
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
                if !interactive {
                    printError("\(event.job): \(event.state.rawValue) (\(state.finished.count)/\(total))")
                }
            }
            guard interactive else { return }
            let elapsed = (ContinuousClock.now - start).seconds
            var head = "[" + Self.bar(state.finished.count, total) + "] \(state.finished.count)/\(total)"
            if state.succeeded > 0 && elapsed > 0 {
                let rate = Double(state.succeeded) / elapsed
                head += String(
                    format: ", %.0f videos/h, %.0f s left", rate * 3600, Double(total - state.finished.count) / rate)
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
            FileHandle.standardError.write(
                Data((up + lines.map { "\u{1B}[K" + $0 }.joined(separator: "\n") + "\n").utf8))
            state.lastLines = lines.count
        }
    }

    func finish() {}

    /// A batch's bar: `width` cells, filled by the share of jobs done, rounded down. A count past the total fills it,
    /// and a total of zero or below is nothing to do, so done.
    static func bar(_ done: Int, _ total: Int, width: Int = 30) -> String {
        guard total > 0 else { return progressBarCells(width, of: width) }
        let done = min(max(done, 0), total)
        // done ≤ total, so done × width / total ≤ width: only the product can overflow, and then the share is exact
        // enough in floating point.
        let (product, overflow) = done.multipliedReportingOverflow(by: width)
        return progressBarCells(
            overflow ? Int(Double(done) / Double(total) * Double(width)) : product / total, of: width)
    }
}
