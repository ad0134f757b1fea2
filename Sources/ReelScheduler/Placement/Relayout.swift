import Foundation
import ReelCore

/// `--placement auto` while the node runs: the layout of slots follows the queue.
///
/// The node looks at the queue every `interval`. When the layout `auto` would choose for the jobs waiting now
/// differs from the one running, and has differed for `settle`, the node changes layout between jobs: the slots stop
/// claiming, running jobs finish, the workers exit and the new layout's workers start (one model load per device).
/// Nothing is requeued or lost; jobs wait in the queue meanwhile.
public struct Relayout: Sendable {
    /// The plan for a number of waiting jobs, or nil to keep the running one (`reel serve`: `PlacementInputs.plan`
    /// with `.auto`). The plan for `.max` is the layout with the most slots: where the node goes when a layout's
    /// workers cannot start.
    public var plan: @Sendable (_ queueDepth: Int) -> PlacementPlan?
    /// How long the queue must call for another layout before the node changes to it.
    public var settle: Duration
    /// How often the queue is looked at.
    public var interval: Duration

    public init(
        settle: Duration = .seconds(20), interval: Duration = .seconds(1),
        plan: @escaping @Sendable (_ queueDepth: Int) -> PlacementPlan?
    ) {
        self.plan = plan
        self.settle = settle
        self.interval = interval
    }

    /// Whether to change from `current` to `desired` now. Pure.
    ///
    /// - A layout with more slots (replicas for a queue that built up behind parallel groups) is changed to once it
    ///   has been wanted for `settle`, even while jobs run: the slots stop claiming, and the jobs they run finish
    ///   first.
    /// - A layout with as many or fewer slots (parallel groups for the next lone job, once the queue is empty) only
    ///   while nothing runs, after the node has been idle for `settle`: a running batch is never slowed down to
    ///   reload models for a faster single job.
    ///
    /// - Parameters:
    ///   - wantedFor: how long `desired` has been the plan for the queue, without a break.
    ///   - idleFor: how long every slot has been ready with no job; nil while any slot runs a job or is starting.
    public static func shouldChange(
        from current: [Slot], to desired: [Slot], wantedFor: Duration, idleFor: Duration?, settle: Duration
    ) -> Bool {
        guard desired != current, wantedFor >= settle else { return false }
        if desired.count > current.count { return true }
        guard let idleFor else { return false }
        return idleFor >= settle
    }
}
