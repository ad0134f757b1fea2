import Foundation
import Logging
import PostgresNIO
import Testing

/// The PostgreSQL server the tests use: `$REEL_TEST_POSTGRES_URL`, which `make test` always sets
/// (scripts/with-postgres.sh starts a throwaway server on loopback). Each test gets a database of its own.
public enum TestPostgres {
    public static let url: String? = {
        let value = ProcessInfo.processInfo.environment["REEL_TEST_POSTGRES_URL"] ?? ""
        return value.isEmpty ? nil : value
    }()

    /// Set by `make test`: a missing server is then a failure, not a skip.
    public static let required = ProcessInfo.processInfo.environment["REEL_REQUIRE_POSTGRES"] == "1"

    public static let unsetMessage = Comment(
        rawValue: "REEL_TEST_POSTGRES_URL is unset, so the PostgreSQL tests are skipped; run them with "
            + "`scripts/with-postgres.sh swift test …` (make test does)")

    /// The server's URL; when there is none, fails the test under `make test`, and otherwise skips it, saying why.
    public static func requireURL(sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        if let url { return url }
        if required { throw MissingServer(description: unsetMessage.rawValue + ", yet REEL_REQUIRE_POSTGRES=1") }
        print("◇ skipped: \(unsetMessage)")
        try Test.cancel(unsetMessage, sourceLocation: sourceLocation)
    }

    struct MissingServer: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs `body` with the URL of a new, empty database on the test server, dropped afterwards.
    public static func withDatabase<R>(
        sourceLocation: SourceLocation = #_sourceLocation, _ body: (String) async throws -> R
    ) async throws -> R {
        let server = try requireURL(sourceLocation: sourceLocation)
        let name = "reel_t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
        try await admin(server, "CREATE DATABASE \(name)")
        do {
            let result = try await body(replacingDatabase(of: server, with: name))
            try await admin(server, "DROP DATABASE \(name) WITH (FORCE)")
            return result
        } catch {
            try? await admin(server, "DROP DATABASE \(name) WITH (FORCE)")
            throw error
        }
    }

    /// `url` naming another database on the same server.
    public static func replacingDatabase(of url: String, with database: String) -> String {
        var components = URLComponents(string: url)!
        components.path = "/" + database
        return components.string!
    }

    /// Runs one statement on the server's own database, on a connection of its own.
    public static func admin(_ url: String, _ sql: String) async throws {
        let components = URLComponents(string: url)!
        let configuration = PostgresConnection.Configuration(
            host: components.host ?? "127.0.0.1", port: components.port ?? 5432, username: components.user ?? "reel",
            password: components.password, database: String(components.path.dropFirst()), tls: .disable)
        var logger = Logger(label: "reel-test-postgres")
        logger.logLevel = .error
        let connection = try await PostgresConnection.connect(
            configuration: configuration, id: 1, logger: logger)
        do {
            try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
            try await connection.close()
        } catch {
            try? await connection.close()
            throw error
        }
    }
}
