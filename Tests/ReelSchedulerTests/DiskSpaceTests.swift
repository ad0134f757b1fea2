import Foundation
import ReelCore
import ReelStore
import ReelTestSupport
import Testing

@testable import ReelScheduler

#if canImport(Glibc)
    import Glibc
#endif

/// A small real file system (tmpfs), mounted for the test, as the outputs' disk.
final class SmallDisk {
    let path: String

    init(bytes: Int) throws {
        path =
            FileManager.default.temporaryDirectory.appendingPathComponent("reel-disk-\(UUID().uuidString.prefix(8))")
            .path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let run = try TestSupport.run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(bytes)", "tmpfs", path])
        guard run.status == 0 else { throw HarnessError("mount -t tmpfs failed: \(run.stderr)") }
    }

    /// Whether this machine lets the tests mount a tmpfs (root, with the capability).
    static let available: Bool = {
        guard geteuid() == 0, FileManager.default.isExecutableFile(atPath: "/bin/mount") else { return false }
        guard let disk = try? SmallDisk(bytes: 1 << 20) else { return false }
        disk.unmount()
        return true
    }()

    /// Fills the disk until at most `left` bytes are free.
    func fill(leaving left: Int64) throws {
        let free = DiskSpace.available(at: path) ?? 0
        let size = max(0, Int(free - left))
        FileManager.default.createFile(atPath: path + "/filler", contents: Data(count: size))
    }

    func unmount() {
        _ = try? TestSupport.run("/bin/umount", ["-l", path])
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// A full disk fails the job that could not write its files, at once and by name, and makes the slots wait for
/// space rather than fail the jobs queued behind it; when space returns, they run.
@Suite(.serialized, .enabled(if: SmallDisk.available, "needs root to mount a tmpfs"))
struct DiskSpaceTests {
    @Test func aFullDiskFailsTheJobNamingThePathAndQueuedJobsWaitForSpace() async throws {
        let disk = try SmallDisk(bytes: 800_000)
        defer { disk.unmount() }
        let harness = try SchedulerHarness(outputRoot: disk.path, minFreeDiskBytes: 200_000)
        try await harness.waitUntilReady()

        // Its video and 33 PNG frames of 512x512 take megabytes: more than the disk holds.
        var big = SchedulerHarness.spec("a wide view", steps: 2, pngFrames: true)
        (big.width, big.height, big.frames) = (512, 512, 33)
        let started = ContinuousClock.now
        let failed = try await harness.waitForTerminal(try await harness.submit(big).id, timeout: .seconds(60))
        // Within seconds, not after retries and their back-off (a loaded machine takes a few to write the frames).
        #expect(ContinuousClock.now - started < .seconds(40), "it failed at once")
        #expect(failed.state == .failed && failed.errorCode == "disk_full" && failed.attempts == 1)
        #expect(failed.errorMessage?.contains(disk.path + "/" + failed.id) == true, "\(failed.errorMessage ?? "")")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: disk.path + "/" + failed.id)) ?? []
        #expect(!left.contains("video.mp4") && !left.contains("job.json") && !left.contains("frames"), "\(left)")
        try await waitUntil { harness.scheduler.workers.first?.state == .ready }  // the slot is healthy again

        // The disk fills up: the next job waits, and the slot says why.
        try disk.fill(leaving: 100_000)
        let waiting = try await harness.submit("a small view")
        try await waitUntil { harness.scheduler.workers.first?.waiting != nil }
        let status = try #require(harness.scheduler.workers.first)
        #expect(status.waiting?.contains("--min-free-disk") == true && status.waiting?.contains(disk.path) == true)
        #expect(!harness.scheduler.isReady, "not ready while no slot can take a job")
        #expect(try await harness.store.job(id: waiting.id)?.state == .queued)

        // Space returns: the job runs by itself.
        try FileManager.default.removeItem(atPath: disk.path + "/filler")
        let done = try await harness.waitForTerminal(waiting.id, timeout: .seconds(60))
        #expect(done.state == .succeeded && done.attempts == 1)
        try await waitUntil { harness.scheduler.workers.first?.waiting == nil && harness.scheduler.isReady }
        await harness.stop()
    }

    private func waitUntil(timeout: Duration = .seconds(30), _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition() {
            guard ContinuousClock.now < deadline else { throw HarnessError("timed out") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
