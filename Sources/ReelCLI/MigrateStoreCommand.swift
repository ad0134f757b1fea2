import ArgumentParser
import Foundation
import ReelStore

/// `reel migrate-store`: copies a queue (jobs, their event logs and idempotency keys, and batch manifests) from one
/// store to another, for example from a node's SQLite file to the PostgreSQL database a cluster will share.
struct MigrateStoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate-store",
        abstract: "Copy every job with its events, and every batch, from one job store into another, empty one.",
        discussion: """
            Stop every `reel serve` that uses either store first. The target must hold no jobs nor batches: the copy
            refuses a store that does, so that nothing is duplicated or overwritten, and it is one transaction, so an
            interrupted copy leaves the target empty for another try. Jobs that were running arrive queued, their
            attempt not counted. The source is only read (a SQLite file's schema is brought
            up to date first).

            Example: reel migrate-store --from ~/.local/share/reel/reel.sqlite --to postgres://reel@db:5432/reel
            """
    )

    @Option(
        help: ArgumentHelp(
            "The store to copy from: a SQLite file (or sqlite:PATH), or postgres://…", valueName: "store"))
    var from: String
    @Option(
        help: ArgumentHelp(
            "The empty store to copy into: postgres://USER@HOST:PORT/DATABASE, or a SQLite file.", valueName: "store"))
    var to: String

    func run() async throws {
        let source = try await Self.open(from, option: "--from", mustExist: true)
        let target: any TransferableJobStore
        do {
            target = try await Self.open(to, option: "--to", mustExist: false)
        } catch {
            await Self.close(source)
            throw error
        }
        let result: Result<StoreTransferReport, any Error>
        do {
            result = .success(try await StoreTransfer.copy(from: source, to: target))
        } catch let error as JobStoreError {
            result = .failure(ValidationError("--to \(Self.describe(to)): \(error.message)"))
        } catch {
            result = .failure(error)
        }
        // PostgreSQL connections are closed, not dropped, whatever happened.
        await Self.close(source)
        await Self.close(target)
        let report = try result.get()
        printFlushed(
            "copied \(report.jobs) job\(report.jobs == 1 ? "" : "s"), \(report.events) event\(report.events == 1 ? "" : "s"), "
                + "\(report.batches) batch\(report.batches == 1 ? "" : "es") "
                + "and \(report.images) image\(report.images == 1 ? "" : "s") "
                + "from \(Self.describe(from)) to \(Self.describe(to))")
        if !report.requeued.isEmpty {
            printFlushed(
                "\(report.requeued.count) running job\(report.requeued.count == 1 ? " was" : "s were") queued again: "
                    + report.requeued.joined(separator: ", "))
        }
    }

    static func open(_ text: String, option: String, mustExist: Bool) async throws -> any TransferableJobStore {
        if text.hasPrefix("postgres:") || text.hasPrefix("postgresql:") {
            do {
                return try await PostgresJobStore(url: text)
            } catch let error as PostgresStoreError {
                throw ValidationError("\(option): \(error.message)")
            }
        }
        let path = text.hasPrefix("sqlite:") ? String(text.dropFirst("sqlite:".count)) : text
        guard !path.isEmpty, !path.contains("://") else {
            throw ValidationError(
                "\(option) \(text): expected a SQLite file path, sqlite:PATH or postgres://USER@HOST/DATABASE")
        }
        if mustExist && !FileManager.default.fileExists(atPath: path) {
            throw ValidationError("\(option) \(path): no such SQLite file")
        }
        return try SQLiteJobStore(path: path)
    }

    static func close(_ store: any TransferableJobStore) async {
        await (store as? PostgresJobStore)?.close()
    }

    /// A store as messages name it: without a password.
    static func describe(_ text: String) -> String {
        (try? PostgresLocation(url: text).redacted) ?? text
    }
}
