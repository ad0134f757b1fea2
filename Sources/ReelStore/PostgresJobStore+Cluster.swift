import Foundation
import Logging
import PostgresNIO
import ReelCore

/// The cluster directory: nodes' heartbeats with their slots, aged by the database's clock.
extension PostgresJobStore {
    // MARK: Nodes

    public func heartbeat(node: String, url: String, workers: Data) async throws {
        let json = String(decoding: workers, as: UTF8.self)
        try await connections.withConnection { connection in
            try await connection.run(
                """
                INSERT INTO node (name, url, workers, heartbeat_at) VALUES (\(node), \(url), \(json)::json, clock_timestamp())
                ON CONFLICT (name) DO UPDATE
                SET url = excluded.url, workers = excluded.workers, heartbeat_at = excluded.heartbeat_at
                """, logger: self.logger)
        }
    }

    public func nodes() async throws -> [ClusterNode] {
        try await connections.withConnection { connection in
            let rows = try await connection.rows(
                """
                SELECT name, url, workers::text, extract(epoch FROM clock_timestamp() - heartbeat_at)::float8
                FROM node ORDER BY name
                """, logger: self.logger)
            var nodes: [ClusterNode] = []
            for try await (name, url, workers, age) in rows.decode((String, String, String, Double).self) {
                nodes.append(
                    ClusterNode(name: name, url: url, workers: Data(workers.utf8), secondsSinceHeartbeat: age))
            }
            return nodes
        }
    }

    public func removeNode(_ name: String) async throws {
        try await connections.withConnection { connection in
            try await connection.run("DELETE FROM node WHERE name = \(name)", logger: self.logger)
        }
    }
}
