import Foundation
import ReelCore
import Synchronization

/// Requests per key per minute, as a token bucket per key: a key may burst up to `perMinute` requests, and earns
/// one back every `60 / perMinute` seconds.
public final class RateLimiter: Sendable {
    public let perMinute: Int
    private let clock: @Sendable () -> ContinuousClock.Instant
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }
    private let buckets = Mutex<[String: Bucket]>([:])

    public init(perMinute: Int, clock: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
        precondition(perMinute > 0, "a rate limit must allow at least one request per minute")
        self.perMinute = perMinute
        self.clock = clock
    }

    /// Takes one token from `key`'s bucket: nil when there was one, otherwise the whole seconds until there is.
    public func take(_ key: String) -> Int? {
        let now = clock()
        let capacity = Double(perMinute)
        let perSecond = capacity / 60
        return buckets.withLock { buckets in
            var bucket = buckets[key] ?? Bucket(tokens: capacity, updated: now)
            let elapsed = bucket.updated.duration(to: now)
            let seconds = elapsed.seconds
            bucket.tokens = min(capacity, bucket.tokens + max(0, seconds) * perSecond)
            bucket.updated = now
            defer { buckets[key] = bucket }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            // Less a hair, so that floating-point dust never adds a second.
            return max(1, Int(((1 - bucket.tokens) / perSecond - 1e-6).rounded(.up)))
        }
    }
}
