import Foundation
import PostgresNIO

/// Where a PostgreSQL database is: parsed from `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=MODE]`.
///
/// `sslmode` is `disable` (the default on a loopback host), `prefer` (the default elsewhere) or `require`. The password
/// may also come from `$PGPASSWORD`, which keeps it out of the process list.
public struct PostgresLocation: Sendable, Equatable {
    public enum TLSMode: String, Sendable { case disable, prefer, require }

    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    public var tls: TLSMode

    /// Throws `PostgresStoreError` naming the part of the URL that is wrong.
    public init(url text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        func bad(_ why: String) -> PostgresStoreError {
            PostgresStoreError(
                "--database \(Self.redact(text)): \(why); expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE")
        }
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            throw bad("not a URL")
        }
        guard scheme == "postgres" || scheme == "postgresql" else {
            throw bad("the scheme is \(scheme), not postgres")
        }
        guard let host = components.host, !host.isEmpty else { throw bad("the host is missing") }
        guard let user = components.user, !user.isEmpty else { throw bad("the user is missing") }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else { throw bad("the database name is missing") }
        if let port = components.port, !(1...65535).contains(port) { throw bad("the port \(port) is out of range") }
        var tls: TLSMode = Self.isLoopback(host) ? .disable : .prefer
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let value = item.value, let mode = TLSMode(rawValue: value) else {
                    throw bad("sslmode must be disable, prefer or require, not \(item.value ?? "empty")")
                }
                tls = mode
            default:
                throw bad("unknown parameter \(item.name) (only sslmode is understood)")
            }
        }
        self.host = host
        self.port = components.port ?? 5432
        self.user = components.percentEncodedUser.flatMap { $0.removingPercentEncoding } ?? user
        self.password =
            components.percentEncodedPassword.flatMap { $0.removingPercentEncoding } ?? environment["PGPASSWORD"]
        self.database = database.removingPercentEncoding ?? database
        self.tls = tls
    }

    /// The URL with its password hidden, for logs and messages.
    public var redacted: String {
        "postgres://\(user)\(password == nil ? "" : ":***")@\(host):\(port)/\(database)"
    }

    static func redact(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.password != nil else { return url }
        components.password = "***"
        return components.string ?? url
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }

    var clientConfiguration: PostgresClient.Configuration {
        let tlsConfiguration: PostgresClient.Configuration.TLS =
            switch tls {
            case .disable: .disable
            case .prefer: .prefer(.makeClientConfiguration())
            case .require: .require(.makeClientConfiguration())
            }
        return PostgresClient.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: tlsConfiguration)
    }

    func connectionConfiguration() throws -> PostgresConnection.Configuration {
        let tlsConfiguration: PostgresConnection.Configuration.TLS =
            switch tls {
            case .disable: .disable
            case .prefer: .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
            case .require: .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            }
        return PostgresConnection.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: tlsConfiguration)
    }

    /// A connection failure worded for the person who typed the URL.
    static func explain(_ error: any Error, connecting location: PostgresLocation) -> any Error {
        if error is JobStoreError { return error }
        var detail = String(describing: error)
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                detail = message
            } else {
                detail = "\(error.code)" + (error.underlying.map { ": \($0)" } ?? "")
            }
        }
        return PostgresStoreError("cannot use the PostgreSQL database \(location.redacted): \(detail)")
    }
}

/// Why a PostgreSQL store could not be opened: a malformed URL, or a server that refused or could not be reached.
public struct PostgresStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}
