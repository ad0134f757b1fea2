import Foundation
import ReelAPI
import ReelCSV
import ReelCore
import ReelStore

extension BatchResource {
    /// The batch `manifest` describes, its accepted rows' jobs as they are in `jobs` (by id) at `now`.
    init(_ manifest: BatchManifest, jobs: [String: Job], now: Date = Date()) {
        var counts: [String: Int] = [:]
        for state in JobState.allCases { counts[state.rawValue] = 0 }
        let rows = manifest.accepted.map { entry in
            let job = jobs[entry.job]
            if let job { counts[job.state.rawValue, default: 0] += 1 }
            return Row(
                row: entry.row, id: entry.job, state: job?.state,
                progress: job?.state == .running ? job?.progress.map(JobResource.Progress.init) : nil,
                videoURL: job?.state == .succeeded ? "/v1/jobs/\(entry.job)/video" : nil,
                error: job?.state == .failed ? job?.errorMessage : nil)
        }
        let finished = manifest.accepted.compactMap { jobs[$0.job] }.filter { $0.state.isTerminal }
        let done = finished.count == manifest.accepted.count
        var videosPerHour: Double?
        var secondsLeft: Double?
        // Throughput from the first start to now (or to the last finish once done).
        let succeeded = finished.filter { $0.state == .succeeded }
        let started = jobs.values.compactMap(\.startedAt).min()
        let end = done ? (finished.compactMap(\.finishedAt).max() ?? now) : now
        if let started, !succeeded.isEmpty, end > started {
            let rate = Double(succeeded.count) / end.timeIntervalSince(started)
            videosPerHour = rate * 3600
            let left = manifest.accepted.count - finished.count
            secondsLeft = done ? 0 : Double(left) / rate
        } else {
            secondsLeft = done ? 0 : nil
        }
        self.init(
            id: manifest.id, createdAt: manifest.createdAt, total: manifest.accepted.count + manifest.rejected.count,
            counts: counts, jobs: rows, rejected: manifest.rejected.map(RejectedRow.init), done: done,
            videosPerHour: videosPerHour, secondsLeft: secondsLeft)
    }
}

/// `report.csv`: one line per row of the batch, accepted or rejected, in row order. The CLI writes the same lines
/// for batches it runs locally.
public enum BatchReport {
    public static let header = [
        "row", "job_id", "state", "seed", "output", "text_encoding_s", "denoising_s", "vae_decode_s", "encoding_s",
        "error",
    ]

    /// The line of a row that became a job; `job` is nil when the store no longer has it.
    public static func line(row: Int, jobID: String, job: Job?) -> [String] {
        let seconds = job?.outputs?.secondsPerStage ?? [:]
        func stage(_ name: String) -> String { seconds[name].map { String(format: "%.3f", $0) } ?? "" }
        return [
            String(row), jobID, job?.state.rawValue ?? "missing", job.map { String($0.spec.seed) } ?? "",
            job?.outputs?.video ?? "", stage("text_encoding"), stage("denoising"), stage("vae_decode"),
            stage("encoding"), job?.state == .failed ? (job?.errorMessage ?? "") : "",
        ]
    }

    /// The line of a row that was rejected before it became a job.
    public static func rejectedLine(row: Int, column: String?, message: String) -> [String] {
        [String(row), "", "rejected", "", "", "", "", "", "", (column.map { "\($0): " } ?? "") + message]
    }

    /// The whole report, lines in row order.
    public static func csv(lines: [Int: [String]]) -> String {
        ([CSVWriter.line(header)] + lines.keys.sorted().map { CSVWriter.line(lines[$0]!) }).joined()
    }

    static func csv(_ manifest: BatchManifest, jobs: [String: Job]) -> String {
        var lines: [Int: [String]] = [:]
        for entry in manifest.accepted {
            lines[entry.row] = line(row: entry.row, jobID: entry.job, job: jobs[entry.job])
        }
        for entry in manifest.rejected {
            lines[entry.row] = rejectedLine(row: entry.row, column: entry.column, message: entry.message)
        }
        return csv(lines: lines)
    }
}
