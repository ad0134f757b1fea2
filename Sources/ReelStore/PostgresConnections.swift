import Logging
import PostgresNIO

/// A small pool of PostgreSQL connections: up to `maximum` open at once, reused while they stay healthy, each lent to
/// one caller at a time. A caller that finds every connection lent waits for one to come back.
///
/// (postgres-nio's own `PostgresClient` pool is not used: under load on a small machine it sometimes left a lease
/// request waiting forever beside idle connections, and a store must never hang a node.)
actor PostgresConnections {
    let configuration: PostgresConnection.Configuration
    let maximum: Int
    let logger: Logger
    private var idle: [PostgresConnection] = []
    private var open = 0
    private var nextID = 1
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var closed = false

    init(configuration: PostgresConnection.Configuration, maximum: Int, logger: Logger) {
        self.configuration = configuration
        self.maximum = maximum
        self.logger = logger
    }

    /// Lends a connection to `body`; a connection that `body` leaves closed (the server dropped it, say) is not
    /// reused. Errors a caller can act on become `JobStoreError`s (see `storeError`), unless `rawErrors`.
    nonisolated func withConnection<Result: Sendable>(
        rawErrors: Bool = false, _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        let connection: PostgresConnection
        do {
            connection = try await acquire()
        } catch let error as PostgresStoreError {
            throw error
        } catch {
            throw rawErrors ? error : Self.storeError(error, connecting: true)
        }
        do {
            let result = try await body(connection)
            await release(connection)
            return result
        } catch {
            await release(connection)
            throw rawErrors ? error : Self.storeError(error)
        }
    }

    /// A `JobStoreError` for the failures an operator or client can act on: a full disk (class 53100); a lock not
    /// obtained in time (55P03 lock_not_available, 40P01 deadlock_detected, 57014 query_canceled by the statement
    /// or lock timeout); and a server that cannot be reached or used just now (the connection failed or dropped,
    /// class 08, 53300 too_many_connections, 57P01–57P03 shutting down or starting), all of which a retry may get
    /// past. Anything else, unchanged.
    static func storeError(_ error: any Error, connecting: Bool = false) -> any Error {
        guard let error = error as? PSQLError else {
            // What NIO throws when the server cannot be reached at all.
            return connecting ? JobStoreError.unreachable("connecting: \(error)") : error
        }
        if error.code == .connectionError || error.code == .serverClosedConnection || error.code == .uncleanShutdown {
            return JobStoreError.unreachable("PostgreSQL: the connection failed (\(error.code))")
        }
        guard let state = error.serverInfo?[.sqlState] else { return error }
        let detail = "PostgreSQL \(state): \(error.serverInfo?[.message] ?? "")"
        switch state {
        case "53100": return JobStoreError.diskFull(detail)
        case "55P03", "40P01", "57014": return JobStoreError.busy(detail)
        case "53300", "57P01", "57P02", "57P03": return JobStoreError.unreachable(detail)
        case _ where state.hasPrefix("08"): return JobStoreError.unreachable(detail)
        default: return error
        }
    }

    /// A new connection of its own, outside the pool (for LISTEN, which holds it).
    nonisolated func connect() async throws -> PostgresConnection {
        try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
    }

    private func acquire() async throws -> PostgresConnection {
        while true {
            guard !closed else { throw PostgresStoreError("the PostgreSQL store was closed") }
            while let connection = idle.popLast() {
                if !connection.isClosed { return connection }
                open -= 1
            }
            if open < maximum {
                open += 1
                let id = nextID
                nextID += 1
                do {
                    return try await PostgresConnection.connect(configuration: configuration, id: id, logger: logger)
                } catch {
                    open -= 1
                    wakeOne()
                    throw error
                }
            }
            await withCheckedContinuation { waiters.append($0) }
        }
    }

    private func release(_ connection: PostgresConnection) {
        if connection.isClosed || closed {
            open -= 1
            if !connection.isClosed { Task { try? await connection.close() } }
        } else {
            idle.append(connection)
        }
        wakeOne()
    }

    private func wakeOne() {
        if !waiters.isEmpty { waiters.removeFirst().resume() }
    }

    /// Closes the idle connections now, and each lent one when it comes back.
    func close() async {
        closed = true
        let connections = idle
        idle = []
        open -= connections.count
        for connection in connections { try? await connection.close() }
        for waiter in waiters { waiter.resume() }
        waiters = []
    }
}
