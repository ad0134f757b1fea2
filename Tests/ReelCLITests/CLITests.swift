import Foundation
import ReelTestSupport
import Testing

/// The `reel` executable end to end: it spawns a real worker with the tiny model.
@Suite(.serialized) struct CLITests {
    func reel(_ arguments: [String], in directory: URL) throws -> TestSupport.Run {
        try TestSupport.runReel(arguments, in: directory)
    }

    @Test func generateWritesAPlayableVideoAndMetadata() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            let run = try reel(
                ["generate", "--prompt", "一只红色的狐狸在雪地里奔跑", "--size", "96x64", "--frames", "13", "--steps", "2",
                 "--seed", "5", "--png-frames", "--device", "cpu", "--out", "clip"],
                in: directory)
            #expect(run.status == 0, "\(run.stderr)")
            let video = directory.appendingPathComponent("clip/video.mp4").path
            #expect(run.stdout.contains(video))
            let probe = try TestSupport.probeVideo(video)
            #expect(probe.frames == 13 && probe.width == 96 && probe.height == 64 && probe.codec == "h264")
            let pngs = try FileManager.default.contentsOfDirectory(atPath: directory.appendingPathComponent("clip/frames").path)
            #expect(pngs.sorted().first == "000001.png" && pngs.count == 13)
            let metadata = try JSONSerialization.jsonObject(
                with: Data(contentsOf: directory.appendingPathComponent("clip/job.json"))) as? [String: Any]
            #expect(metadata?["prompt"] as? String == "一只红色的狐狸在雪地里奔跑")
            #expect(metadata?["seed"] as? Int == 5)
            #expect(metadata?["steps"] as? Int == 2)
        }
    }

    @Test func invalidValuesAreRejectedBeforeAnyModelLoads() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            let size = try reel(["generate", "--prompt", "x", "--size", "100x64", "--out", "o"], in: directory)
            #expect(size.status != 0)
            #expect(size.stderr.contains("nearest valid size is 96x64"), "\(size.stderr)")
            #expect(!size.stderr.contains("starting"), "no worker was started")
            let frames = try reel(["generate", "--prompt", "x", "--frames", "16", "--out", "o"], in: directory)
            #expect(frames.status != 0 && frames.stderr.contains("nearest valid count is 17"), "\(frames.stderr)")
            let model = try reel(["generate", "--prompt", "x", "--model", "/no/such/model", "--out", "o"], in: directory)
            #expect(model.status != 0 && model.stderr.contains("Wan-AI/Wan2.2"), "\(model.stderr)")
            #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("o").path))
        }
    }

    @Test func batchRunsTheGoodRowsAndReportsTheBadOnes() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            let csv = "\u{FEFF}prompt,size,frames,steps,seed\r\n"
                + "\"a fox, in snow\",64x64,5,2,1\r\n"
                + "a bad size,65x64,5,2,2\r\n"
                + "一只狐狸,64x64,9,2,3\r\n"
            try csv.write(to: directory.appendingPathComponent("prompts.csv"), atomically: true, encoding: .utf8)
            let run = try reel(["batch", "prompts.csv", "--device", "cpu", "--out", "videos"], in: directory)
            #expect(run.status == 1, "one row was rejected, so the batch is not a full success")
            #expect(run.stderr.contains("row 3, column size"), "\(run.stderr)")
            let first = directory.appendingPathComponent("videos/002-a-fox-in-snow/video.mp4").path
            let third = directory.appendingPathComponent("videos/004-一只狐狸/video.mp4").path
            #expect(try TestSupport.probeVideo(first).frames == 5)
            #expect(try TestSupport.probeVideo(third).frames == 9)
            let report = try String(contentsOf: directory.appendingPathComponent("videos/report.csv"), encoding: .utf8)
            let lines = report.split(separator: "\r\n")
            #expect(lines.count == 4)
            #expect(lines[1].hasPrefix("2,row-2,succeeded,1,"))
            #expect(lines[2].hasPrefix("3,,rejected,") && lines[2].contains("size"))
            #expect(lines[3].hasPrefix("4,row-4,succeeded,3,"))
        }
    }
}

extension TestSupport {
    static func withTemporaryDirectorySync<R>(_ body: (URL) throws -> R) throws -> R {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("reel-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: url) }
        return try body(url)
    }
}
