import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ReelScheduler
import ReelServer
import ReelStore
import ReelTestSupport
import ReelWorker
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The SQLite store on a disk that fills up, and under a lock another connection holds: the API answers 507 and
/// 503 with what to do (not a 500 `internal_error`), and nothing it accepted before is lost.
@Suite(.serialized) struct StoreFailureTests {
    /// A server whose jobs live in the SQLite file at `path`.
    struct SQLiteServer {
        let store: SQLiteJobStore
        let server: ReelServerApplication

        init(path: String, busyTimeout: TimeInterval = 10) throws {
            store = try SQLiteJobStore(path: path, busyTimeout: busyTimeout)
            let metrics = ReelMetricsRegistry()
            let scheduler = Scheduler(
                configuration: SchedulerConfiguration(
                    node: "test", slots: [], engine: EngineLocation(python: "python3", packageDirectory: nil),
                    model: "tiny", dataDirectory: URL(fileURLWithPath: path).deletingLastPathComponent().path),
                store: store, metrics: metrics.schedulerMetrics, logger: TestSupport.logger)
            let service = try JobService(store: store, scheduler: scheduler)
            server = ReelServerApplication(
                configuration: ReelServerConfiguration(port: 0), service: service, metrics: metrics,
                logger: TestSupport.logger)
        }
    }

    static let spec = #"{"prompt": "a lighthouse at dusk, waves breaking below", "size": "64x64", "frames": 5}"#

    /// A tmpfs of `megabytes` mounted on a new directory for the length of `body` (root only, as the test runs).
    static func withTmpfs(megabytes: Int, _ body: (URL) async throws -> Void) async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let mountPoint = directory.appendingPathComponent("disk")
            try FileManager.default.createDirectory(at: mountPoint, withIntermediateDirectories: true)
            guard run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", mountPoint.path]) == 0 else {
                throw TestFailure("mounting a tmpfs on \(mountPoint.path) failed; this test needs root")
            }
            defer { _ = run("/bin/umount", ["-l", mountPoint.path]) }
            try await body(mountPoint)
        }
    }

    static func run(_ tool: String, _ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        do { try process.run() } catch { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }

    @Test(.enabled(if: getuid() == 0, "mounting a tmpfs needs root"))
    func aFullDiskIs507AndLosesNothingAccepted() async throws {
        try await Self.withTmpfs(megabytes: 2) { disk in
            let path = disk.appendingPathComponent("reel.sqlite").path
            let filler = disk.appendingPathComponent("filler")
            let server = try SQLiteServer(path: path)
            let accepted = try await server.server.application.test(.router) { client in
                var accepted: [String] = []
                // Fill the disk to a few pages short; the jobs that still fit are accepted.
                let free = try Self.freeBytes(disk)
                try Data(count: max(0, free - 96 * 1024)).write(to: filler)
                var full: TestResponse?
                for _ in 0..<2000 {
                    let response = try await client.submit(Self.spec)
                    if response.status == .created {
                        accepted.append(try #require(try response.object()["id"] as? String))
                        continue
                    }
                    full = response
                    break
                }
                let response = try #require(full, "the disk never filled up")
                #expect(response.status.code == 507, "\(String(buffer: response.body))")
                let error = try response.apiError()
                #expect(error["code"] as? String == "storage_full")
                #expect((error["message"] as? String)?.contains("disk is full") == true)
                // Reads still work, and every accepted job is there.
                #expect(try await client.execute(uri: "/v1/jobs?limit=500", method: .get).status == .ok)
                for id in accepted {
                    #expect(try await client.execute(uri: "/v1/jobs/\(id)", method: .get).status == .ok)
                }
                // Space returns: submissions succeed again, with nothing to restart.
                try FileManager.default.removeItem(at: filler)
                #expect(try await client.submit(Self.spec).status == .created)
                return accepted
            }
            #expect(!accepted.isEmpty)
            // The file, opened afresh, holds every accepted job.
            let reopened = try SQLiteJobStore(path: path)
            for id in accepted { #expect(try await reopened.job(id: id) != nil) }
            #expect(try await reopened.counts()[.queued] == accepted.count + 1)
        }
    }

    @Test func aDatabaseLockedPastTheBusyTimeoutIs503WithRetryAfter() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("reel.sqlite").path
            let server = try SQLiteServer(path: path, busyTimeout: 0.2)
            try await server.server.application.test(.router) { client in
                let before = try await client.submitJob(Self.spec)
                // Another connection (another process, in real life) takes the write lock and keeps it.
                var configuration = Configuration()
                configuration.allowsUnsafeTransactions = true
                let other = try DatabaseQueue(path: path, configuration: configuration)
                try await other.writeWithoutTransaction { db in try db.execute(sql: "BEGIN IMMEDIATE") }
                let locked = try await client.submit(Self.spec)
                #expect(locked.status == .serviceUnavailable, "\(String(buffer: locked.body))")
                #expect(locked.headers[.retryAfter] == String(JobStoreError.busyRetryAfterSeconds))
                #expect(try locked.apiError()["code"] as? String == "store_busy")
                // Readers are not blocked by a writer, and the lock's release lets writes through again.
                #expect(try await client.execute(uri: "/v1/jobs/\(before)", method: .get).status == .ok)
                try await other.writeWithoutTransaction { db in try db.execute(sql: "ROLLBACK") }
                #expect(try await client.submit(Self.spec).status == .created)
                #expect(try await server.store.counts()[.queued] == 2)
            }
        }
    }

    static func freeBytes(_ url: URL) throws -> Int {
        let attributes = try FileManager.default.attributesOfFileSystem(forPath: url.path)
        return (attributes[.systemFreeSize] as? NSNumber)?.intValue ?? 0
    }
}
