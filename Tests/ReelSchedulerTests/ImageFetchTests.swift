import Foundation
import ReelCore
import ReelStore
import ReelTestSupport
import Testing

@testable import ReelScheduler

/// A claimed job's images, as the slot makes sure this node holds them before the worker reads them: copied from the
/// job store when another node took the upload, and the job failed, naming the image, when no store has it.
@Suite(.serialized) struct ImageFetchTests {
    @Test func anImageOnlyTheJobStoreHoldsIsCopiedHereAndAMissingOneFailsItsJobAlone() async throws {
        let harness = try SchedulerHarness(slots: 1)
        let files = harness.scheduler.configuration.images
        // The reference as another node's upload made it: a store of its own, then the bytes into the job store.
        let elsewhere = ImageStore(directory: harness.directory.appendingPathComponent("elsewhere"))
        let image = try elsewhere.put(ImageFixtures.png3x2)
        #expect(try await harness.store.putImage(image, bytes: ImageFixtures.png3x2, now: Date()))
        let absent = try elsewhere.put(ImageFixtures.webpLossy5x4)
        #expect(!FileManager.default.fileExists(atPath: files.url(for: image).path))

        var spec = SchedulerHarness.spec("a lamp turning")
        spec.image = image
        spec.fit = .cover
        var lost = spec
        lost.image = absent
        let missing = try await harness.submit(lost, priority: 2)
        let fetched = try await harness.submit(spec, priority: 1)
        let plain = try await harness.submit("a kite over dunes")

        let failed = try await harness.waitForTerminal(missing.id)
        #expect(failed.state == .failed && failed.errorCode == "image_missing" && failed.attempts == 1)
        #expect(failed.errorMessage?.contains(absent.id) == true, "\(failed.errorMessage ?? "")")
        let done = try await harness.waitForTerminal(fetched.id)
        #expect(done.state == .succeeded, "\(done.errorMessage ?? "")")
        let metadata =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: try #require(done.outputs?.metadata)))) as? [String: Any]
        #expect((metadata?["image"] as? [String: Any])?["sha256"] as? String == image.sha256)
        #expect(FileManager.default.contents(atPath: files.url(for: image).path) == Data(ImageFixtures.png3x2))
        #expect(try await harness.waitForTerminal(plain.id).state == .succeeded, "the next job ran")
        await harness.stop()
    }
}
