import CoreMetrics
import Foundation

/// The scheduler's metrics, created from an explicit factory so nothing global is bootstrapped.
public struct SchedulerMetrics: Sendable {
    let factory: any MetricsFactory

    public init(factory: any MetricsFactory) { self.factory = factory }

    func jobFinished(state: String) {
        Counter(label: "reel_jobs_finished_total", dimensions: [("state", state)], factory: factory).increment()
    }

    func failure(code: String) {
        Counter(label: "reel_job_failures_total", dimensions: [("code", code)], factory: factory).increment()
    }

    func workerRestart(slot: String) {
        Counter(label: "reel_worker_restarts_total", dimensions: [("slot", slot)], factory: factory).increment()
    }

    /// `--placement auto` changed the node's layout; `to` is the new placement (`replica`, `parallel:2`, …).
    func layoutChange(to placement: String) {
        Counter(label: "reel_layout_changes_total", dimensions: [("to", placement)], factory: factory).increment()
    }

    func stageSeconds(_ stage: String, _ seconds: Double) {
        Timer(label: "reel_stage_seconds", dimensions: [("stage", stage)], factory: factory)
            .recordNanoseconds(Self.nanoseconds(seconds))
    }

    /// A worker's seconds as nanoseconds: a value no clock could give (negative, not finite, over a year) counts as 0
    /// rather than trapping on the conversion.
    static func nanoseconds(_ seconds: Double) -> Int64 {
        guard seconds.isFinite, seconds >= 0, seconds < 3.2e7 else { return 0 }
        return Int64(seconds * 1e9)
    }

    func stepsPerSecond(slot: String, _ value: Double) {
        Gauge(label: "reel_denoise_steps_per_second", dimensions: [("slot", slot)], factory: factory).record(value)
    }
}
