extension JobEvent {
    /// The kinds of event the store itself logs; `appendEvent` may add others.
    public enum Kind: String, Sendable, CaseIterable {
        case queued, started, succeeded, failed, requeued, cancelled
        case cancelRequested = "cancel_requested"
    }
}
