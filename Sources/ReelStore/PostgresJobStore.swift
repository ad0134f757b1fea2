import Foundation
import Logging
import PostgresNIO
import ReelCore

/// The `JobStore` several `reel serve` nodes share: one PostgreSQL database, through postgres-nio's connection pool.
///
/// - Claims lock the head of the queue with `FOR UPDATE SKIP LOCKED`: two nodes claiming at once take different jobs
///   and never wait for each other. Every method is one transaction; a connection lost before its `COMMIT` changes
///   nothing, so a claim cut off half-way leaves the job queued.
/// - Every change a transaction logs is also announced with `NOTIFY reel_job_updates`, delivered at its commit;
///   `relayUpdates` listens and publishes every node's updates to `updates()`, so every node's event stream shows
///   every job's, and idle slots on every node wake as soon as any node queues a job.
/// - Time: with `TimeSource.database` (what `reel serve` uses), every date the store writes comes from the database's
///   `clock_timestamp()`, and a lease the caller asks for "until T" lasts `T - now` by the database's clock. Nodes'
///   clocks may differ; only durations cross from a node to the database, so a node whose clock runs ahead cannot take
///   another node's live job, and claim order (oldest first) is one order for every node.
///   `TimeSource.caller` keeps the caller's dates, as the other stores do (for the shared store tests, which step a
///   fixed clock).
public final class PostgresJobStore: JobStore, ClusterDirectory {
    /// Whose clock dates come from.
    public enum TimeSource: Sendable {
        /// The database's `clock_timestamp()`; a caller's `now` only sets the length of the leases it asks for.
        case database
        /// The caller's `now`, verbatim.
        case caller
    }

    /// The channel every committed change and every progress report is announced on, to every node (`JobUpdate` as
    /// JSON, with the job's owner).
    static let updatesChannel = "reel_job_updates"

    let connections: PostgresConnections
    let timeSource: TimeSource
    /// The updates every node announced, as this node's `LISTEN` (`relayUpdates`) hears them.
    let feed = UpdateFeed()
    let logger: Logger
    /// Called inside a claim's transaction after its `UPDATE`, before `COMMIT`, with the connection's backend pid:
    /// lets a test cut the connection at that very point.
    let beforeClaimCommit: (@Sendable (Int32) async -> Void)?

    /// Connects to the database `url` names (see `PostgresLocation`), and brings its schema up to date.
    public convenience init(url: String, timeSource: TimeSource = .database, logger: Logger? = nil) async throws {
        try await self.init(
            location: PostgresLocation(url: url), timeSource: timeSource, logger: logger, beforeClaimCommit: nil)
    }

    /// `lockTimeout`: how long a statement waits for a row another connection holds before it fails (answered 503
    /// with Retry-After). Every statement is also limited to a minute, and a transaction left open and idle (by a
    /// node that hung mid-way) is ended after a minute, so no request and no node waits on another for ever.
    init(
        location: PostgresLocation, timeSource: TimeSource, logger: Logger?,
        beforeClaimCommit: (@Sendable (Int32) async -> Void)?, lockTimeout: Duration = .seconds(10)
    ) async throws {
        var logger = logger ?? Logger(label: "reel.store.postgres")
        logger[metadataKey: "database"] = "\(location.redacted)"
        // postgres-nio's own chatter is noise; failures reach the caller as errors.
        var connectionLogger = logger
        connectionLogger.logLevel = .error
        var configuration: PostgresConnection.Configuration
        do {
            configuration = try location.connectionConfiguration()
        } catch {
            throw PostgresLocation.explain(error, connecting: location)
        }
        configuration.options.connectTimeout = .seconds(10)
        let lockMilliseconds =
            lockTimeout.components.seconds * 1000 + lockTimeout.components.attoseconds / 1_000_000_000_000_000
        configuration.options.additionalStartupParameters = [
            ("lock_timeout", "\(max(1, lockMilliseconds))ms"), ("statement_timeout", "60s"),
            ("idle_in_transaction_session_timeout", "60s"),
        ]
        let connections = PostgresConnections(configuration: configuration, maximum: 16, logger: connectionLogger)
        self.connections = connections
        self.timeSource = timeSource
        self.logger = logger
        self.beforeClaimCommit = beforeClaimCommit
        // The first connection fails at once with the server's reason (no such database, wrong password…).
        do {
            // Raw errors: PostgresLocation.explain words them for the person who typed the URL.
            try await connections.withConnection(rawErrors: true) { connection in
                try await Self.migrate(connection, logger: logger)
            }
        } catch {
            await connections.close()
            throw PostgresLocation.explain(error, connecting: location)
        }
    }

    /// Closes every connection; the store is unusable afterwards. Call it before letting go of a store (a debug build
    /// asserts that no PostgreSQL connection is dropped open).
    public func close() async {
        await connections.close()
    }
}
