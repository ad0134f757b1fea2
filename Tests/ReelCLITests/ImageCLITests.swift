import Foundation
import ReelTestSupport
import Testing

/// `reel generate --image` and a batch's `image` column, end to end: the real engine with the tiny I2V-A14B model
/// once, the scripted worker where the test is about the command.
@Suite(.serialized) struct ImageCLITests {
    func metadata(_ path: URL) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: path)) as? [String: Any] ?? [:]
    }

    @Test func generateStartsFromAPictureAndRecordsWhichOne() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            let first = directory.appendingPathComponent("first.png")
            let last = directory.appendingPathComponent("last.webp")
            try Data(ImageFixtures.png3x2).write(to: first)
            try Data(ImageFixtures.webpLossy5x4).write(to: last)
            let run = try TestSupport.runReel(
                [
                    "generate", "--model", "tiny:i2v-a14b", "--prompt", "a lamp turning", "--image", "first.png",
                    "--last-image", last.path, "--fit", "contain", "--size", "64x64", "--frames", "5", "--steps", "2",
                    "--seed", "4", "--device", "cpu", "--out", "clip",
                ], in: directory, worker: .real)
            #expect(run.status == 0, "\(run.stderr)")
            let probe = try TestSupport.probeVideo(directory.appendingPathComponent("clip/video.mp4").path)
            #expect(probe.frames == 5 && probe.width == 64 && probe.height == 64)
            let job = try metadata(directory.appendingPathComponent("clip/job.json"))
            let image = job["image"] as? [String: Any]
            let digest = try TestSupport.runCapturing("/usr/bin/sha256sum", [first.path]).prefix(64)
            #expect(image?["sha256"] as? String == String(digest), "\(job)")
            #expect(image?["fit"] as? String == "contain")
            #expect((job["last_image"] as? [String: Any])?["width"] as? Int == 5)
        }
    }

    @Test func aBadPictureOrAModelWithoutImagesIsRefusedBeforeAnyWorkerStarts() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            try Data(ImageFixtures.png3x2.dropLast(5)).write(to: directory.appendingPathComponent("cut.png"))
            try Data(ImageFixtures.png3x2).write(to: directory.appendingPathComponent("ok.png"))
            let cut = try TestSupport.runReel(
                ["generate", "--prompt", "x", "--image", "cut.png", "--out", "o"], in: directory, worker: .scripted)
            #expect(cut.status != 0 && cut.stderr.contains("image:"), "\(cut.stderr)")
            let textOnly = try TestSupport.runReel(
                ["generate", "--model", "tiny:t2v-a14b", "--prompt", "x", "--image", "ok.png", "--out", "o"],
                in: directory, worker: .scripted)
            #expect(textOnly.status != 0 && textOnly.stderr.contains("ti2v-5b, i2v-a14b"), "\(textOnly.stderr)")
            let missing = try TestSupport.runReel(
                ["generate", "--prompt", "x", "--image", "nowhere.png", "--out", "o"], in: directory,
                worker: .scripted)
            #expect(missing.status != 0 && missing.stderr.contains("nowhere.png"), "\(missing.stderr)")
            #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("o").path))
        }
    }

    @Test func aBatchReadsItsImagesBesideTheCSVAndReportsABadOneByRowAndColumn() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            let photos = directory.appendingPathComponent("photos")
            try FileManager.default.createDirectory(at: photos, withIntermediateDirectories: true)
            try Data(ImageFixtures.png3x2).write(to: photos.appendingPathComponent("lamp.png"))
            try Data("not a picture".utf8).write(to: photos.appendingPathComponent("broken.png"))
            let csv =
                "prompt,image,fit,size,frames,steps,seed\n" + "a lamp,photos/lamp.png,stretch,64x64,5,2,1\n"
                + "a broken one,photos/broken.png,,64x64,5,2,2\n" + "no picture,,,64x64,5,2,3\n"
            try csv.write(to: directory.appendingPathComponent("rows.csv"), atomically: true, encoding: .utf8)
            let run = try TestSupport.runReel(
                ["batch", "rows.csv", "--device", "cpu", "--out", "videos"], in: directory, worker: .scripted)
            #expect(run.status == 1 && run.stderr.contains("row 3, column image"), "\(run.stderr)")
            let lamp = try metadata(directory.appendingPathComponent("videos/002-a-lamp/job.json"))
            #expect((lamp["image"] as? [String: Any])?["fit"] as? String == "stretch", "\(lamp)")
            let plain = try metadata(directory.appendingPathComponent("videos/004-no-picture/job.json"))
            #expect(plain["image"] is NSNull, "TI2V-5B without a picture is text-to-video")
        }
    }

    @Test func aBatchSentToAServerUploadsItsImagesOnceAndNamesThemByID() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try ServerProcess(devices: "cpu", dataDirectory: directory.appendingPathComponent("server"))
            defer { server.stop() }
            try await server.waitUntilReady()
            try Data(ImageFixtures.png3x2).write(to: directory.appendingPathComponent("lamp.png"))
            try Data(ImageFixtures.png3x2.dropLast(7)).write(to: directory.appendingPathComponent("cut.png"))
            let csv =
                "prompt,image,size,frames,steps\n" + "one lamp,lamp.png,64x64,5,2\n" + "a cut one,cut.png,64x64,5,2\n"
                + "\n" + "the same lamp,lamp.png,64x64,5,2\n"
            try csv.write(to: directory.appendingPathComponent("rows.csv"), atomically: true, encoding: .utf8)
            let run = try TestSupport.runReel(
                ["batch", "rows.csv", "--server", "http://127.0.0.1:\(server.port)", "--wait", "--out", "videos"],
                in: directory)
            #expect(run.status == 1, "one row's image was refused: \(run.stderr)")
            #expect(run.stderr.contains("row 3, column image") && run.stderr.contains("cut.png"), "\(run.stderr)")
            let report = try String(contentsOf: directory.appendingPathComponent("videos/report.csv"), encoding: .utf8)
            let lines = report.split(separator: "\r\n").map(String.init)
            #expect(lines.contains { $0.hasPrefix("2,") && $0.contains("succeeded") }, "\(report)")
            #expect(
                lines.contains { $0.hasPrefix("5,") && $0.contains("succeeded") },
                "the row after a blank one keeps its number")
            let images = directory.appendingPathComponent("server/images")
            let stored = try FileManager.default.subpathsOfDirectory(atPath: images.path).filter {
                $0.hasSuffix(".png")
            }
            #expect(stored.count == 1, "one picture, uploaded once: \(stored)")
        }
    }
}
