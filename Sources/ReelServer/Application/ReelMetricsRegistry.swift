import Prometheus
import ReelCore
import ReelScheduler
import ReelStore

/// The server's own Prometheus registry (nothing global is bootstrapped) and the metrics made from it: give
/// `schedulerMetrics` to the `Scheduler` and this to the server, and `/metrics` shows both.
public final class ReelMetricsRegistry: Sendable {
    public let registry: PrometheusCollectorRegistry
    /// A swift-metrics factory writing into `registry`.
    public let factory: PrometheusMetricsFactory

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        self.factory = PrometheusMetricsFactory(registry: registry)
    }

    /// The scheduler's counters and timers, recorded into this registry.
    public var schedulerMetrics: SchedulerMetrics { SchedulerMetrics(factory: factory) }

    /// Every state a worker can be in, so a state no worker is in reads 0 rather than its last value.
    static let workerStates: [WorkerStatus.State] = [.starting, .ready, .busy, .restarting, .unhealthy, .stopped]

    // Computed: `MetricNameDescriptor` is not Sendable, so it cannot be a stored static.
    private static var jobs: MetricNameDescriptor {
        MetricNameDescriptor(metricName: "reel_jobs", unitName: "", helpText: "Jobs in the store, by state.")
    }
    private static var workers: MetricNameDescriptor {
        MetricNameDescriptor(metricName: "reel_workers", unitName: "", helpText: "Workers of this node, by state.")
    }

    /// Sets the gauges read at scrape time: jobs by state, and this node's workers by state.
    public func update(jobCounts: [JobState: Int], workers: [WorkerStatus]) {
        for state in JobState.allCases {
            registry.makeGauge(descriptor: Self.jobs, labels: [("state", state.rawValue)])
                .set(Double(jobCounts[state] ?? 0))
        }
        var byState: [String: Int] = [:]
        for state in Self.workerStates { byState[state.rawValue] = 0 }
        for worker in workers { byState[worker.state.rawValue, default: 0] += 1 }
        for (state, count) in byState {
            registry.makeGauge(descriptor: Self.workers, labels: [("state", state)]).set(Double(count))
        }
    }

    /// The Prometheus text exposition of every metric, after updating the gauges from the store and scheduler.
    public func render(store: any JobStore, scheduler: Scheduler) async throws -> String {
        update(jobCounts: try await store.counts(), workers: scheduler.workers)
        return registry.emitToString()
    }
}
