import ArgumentParser
import Foundation
import Logging
import ReelScheduler
import ReelServer
import ReelStore
import ServiceLifecycle

/// `reel serve --database`: one node's own SQLite file, or a PostgreSQL database several nodes share.
extension ServeCommand {
    /// The job store `--database` names, and its cluster directory when it is a shared one.
    func openStore(
        dataDirectory: String, logger: Logger
    ) async throws -> (
        store: any JobStore, directory: (any ClusterDirectory)?
    ) {
        let database = database ?? dataDirectory + "/reel.sqlite"
        if database.hasPrefix("postgres:") || database.hasPrefix("postgresql:") {
            do {
                let store = try await PostgresJobStore(url: database, logger: logger)
                return (store, store)
            } catch let error as PostgresStoreError {
                throw ValidationError(error.message)
            }
        }
        if database.contains("://") {
            throw ValidationError(
                "--database \(database): expected a SQLite file path or postgres://USER@HOST:PORT/DATABASE")
        }
        return (try SQLiteJobStore(path: database), nil)
    }

    /// Closes a PostgreSQL store's connections once nothing uses it any more.
    func closeStore(_ store: any JobStore) async {
        await (store as? PostgresJobStore)?.close()
    }

    /// Where other nodes send clients for this node's files: `--advertise-url`, else this address (with the host
    /// name in place of a wildcard address, which no other machine could reach).
    var resolvedAdvertiseURL: String {
        if let advertiseURL { return advertiseURL }
        let reachable = ["0.0.0.0", "::", "[::]"].contains(host) ? ProcessInfo.processInfo.hostName : host
        return "http://\(reachable.contains(":") && !reachable.hasPrefix("[") ? "[\(reachable)]" : reachable):\(port)"
    }

    /// The services a shared store adds: heartbeats and wake-ups (none for a node's own SQLite file).
    func clusterServices(
        directory: (any ClusterDirectory)?, scheduler: Scheduler, logger: Logger
    ) -> [ServiceGroupConfiguration.ServiceConfiguration] {
        guard let directory else { return [] }
        printFlushed("cluster: node \(scheduler.configuration.node) at \(resolvedAdvertiseURL)")
        return [
            .init(
                service: ClusterService(
                    directory: directory, scheduler: scheduler, advertiseURL: resolvedAdvertiseURL, logger: logger))
        ]
    }
}
