import Foundation
import ReelWorkerProtocol

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Draws a job's progress on stderr: a redrawn bar on a terminal, a line per stage otherwise.
final class ProgressDisplay {
    private let label: String
    private let interactive = isatty(STDERR_FILENO) != 0
    private let start = ContinuousClock.now
    private var lastStage: WorkerEvent.Stage?

    init(label: String) { self.label = label }

    func update(_ progress: WorkerEvent.Progress) {
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
