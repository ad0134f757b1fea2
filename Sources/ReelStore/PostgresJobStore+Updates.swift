import Foundation
import Logging
import PostgresNIO
import ReelCore

/// Job updates: announced with `NOTIFY` inside the transaction that makes the change (delivered at its commit),
/// heard by every node's `LISTEN` and published to its subscribers.
extension PostgresJobStore {
    // MARK: Updates

    public func updates() -> AsyncStream<JobUpdate> { feed.subscribe() }

    public var updateSubscriberCount: Int { feed.subscriberCount }

    /// Sends `update` to every node's listener: at once, or inside a transaction when it commits.
    func notify(_ update: JobUpdate, _ connection: PostgresConnection) async throws {
        try await connection.run("SELECT pg_notify(\(Self.updatesChannel), \(Self.notice(update)))", logger: logger)
    }

    public func publish(_ update: JobUpdate) async {
        do {
            try await connections.withConnection { connection in try await self.notify(update, connection) }
        } catch {
            logger.warning("could not announce an update of job \(update.job): \(error)")
        }
    }

    /// Listens on the updates channel on a connection of its own and publishes what every node announces, this one
    /// included, to `updates()`; reconnects after a failure, until the task is cancelled. Updates announced while it
    /// was reconnecting are not heard (the jobs' states and event logs have them).
    public func relayUpdates() async {
        while !Task.isCancelled {
            do {
                let connection = try await connections.connect()
                do {
                    try await connection.listen(on: Self.updatesChannel) { notifications in
                        for try await notification in notifications {
                            if let update = Self.decodeNotice(notification.payload) { self.feed.publish(update) }
                        }
                    }
                    try? await connection.close()
                } catch {
                    try? await connection.close()
                    throw error
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning("listening for job updates failed, retrying in 1 s: \(String(reflecting: error))")
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// What travels on the updates channel: the update with its owner, within PostgreSQL's 8000-byte payload limit
    /// (a long message is shortened).
    struct Notice: Codable {
        var update: JobUpdate
        var owner: String?
    }

    static func notice(_ update: JobUpdate) -> String {
        var update = update
        for limit in [2000, 200, 0] {
            if let message = update.message, message.utf8.count > limit {
                update.message = limit == 0 ? nil : String(message.prefix(limit)) + "…"
            }
            if let data = try? JSONEncoder.notices.encode(Notice(update: update, owner: update.owner)),
                data.count < 7900
            {
                return String(decoding: data, as: UTF8.self)
            }
        }
        return "{}"
    }

    static func decodeNotice(_ payload: String) -> JobUpdate? {
        guard let notice = try? JSONDecoder.notices.decode(Notice.self, from: Data(payload.utf8)) else { return nil }
        var update = notice.update
        update.owner = notice.owner
        return update
    }
}

extension JSONEncoder {
    /// Dates as seconds since 1970, as the notices carry them.
    static var notices: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        return encoder
    }
}

extension JSONDecoder {
    static var notices: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return decoder
    }
}
