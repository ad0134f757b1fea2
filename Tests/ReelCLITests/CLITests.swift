import Foundation
import ReelTestSupport
import Testing

/// The `reel` executable end to end: a real worker with the tiny model, or the scripted worker where the test is
/// about the command rather than the engine.
@Suite(.serialized) struct CLITests {
    func reel(_ arguments: [String], in directory: URL, worker: TestSupport.Worker = .real) throws -> TestSupport.Run {
        try TestSupport.runReel(arguments, in: directory, worker: worker)
    }

    @Test func generateWritesAPlayableVideoAndMetadata() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            let run = try reel(
                [
                    "generate", "--prompt", "一只红色的狐狸在雪地里奔跑", "--size", "96x64", "--frames", "13", "--steps", "2",
                    "--seed", "5", "--png-frames", "--device", "cpu", "--out", "clip",
                ],
                in: directory)
            #expect(run.status == 0, "\(run.stderr)")
            let video = directory.appendingPathComponent("clip/video.mp4").path
            #expect(run.stdout.contains(video))
            let probe = try TestSupport.probeVideo(video)
            #expect(probe.frames == 13 && probe.width == 96 && probe.height == 64 && probe.codec == "h264")
            let pngs = try FileManager.default.contentsOfDirectory(
                atPath: directory.appendingPathComponent("clip/frames").path)
            #expect(pngs.sorted().first == "000001.png" && pngs.count == 13)
            let metadata =
                try JSONSerialization.jsonObject(
                    with: Data(contentsOf: directory.appendingPathComponent("clip/job.json"))) as? [String: Any]
            #expect(metadata?["prompt"] as? String == "一只红色的狐狸在雪地里奔跑")
            #expect(metadata?["seed"] as? Int == 5)
            #expect(metadata?["steps"] as? Int == 2)
        }
    }

    @Test func anApproximateSpeedUpIsOptInAndRecordedInTheJobsMetadata() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            func execution(_ clip: String) throws -> [String: Any]? {
                let metadata =
                    try JSONSerialization.jsonObject(
                        with: Data(contentsOf: directory.appendingPathComponent("\(clip)/job.json"))) as? [String: Any]
                return metadata?["execution"] as? [String: Any]
            }
            let common = [
                "generate", "--prompt", "a heron", "--size", "64x64", "--frames", "5", "--steps", "4",
                "--device", "cpu",
            ]
            let exact = try reel(common + ["--out", "exact"], in: directory, worker: .scripted)
            #expect(exact.status == 0, "\(exact.stderr)")
            #expect(try execution("exact")?["approximate"] is NSNull, "exact math unless asked for")
            let cached = try reel(
                common + ["--approximate", "first-block-cache:0.5", "--out", "cached"], in: directory, worker: .scripted
            )
            #expect(cached.status == 0, "\(cached.stderr)")
            let approximate = try execution("cached")?["approximate"] as? [String: Any]
            #expect(approximate?["name"] as? String == "first-block-cache")
            #expect(approximate?["threshold"] as? Double == 0.5)
            let bad = try reel(
                common + ["--approximate", "teacache", "--out", "bad"], in: directory, worker: .scripted)
            #expect(bad.status != 0 && bad.stderr.contains("first-block-cache"), "\(bad.stderr)")
        }
    }

    @Test func interpolationDoublesTheFrameCountAtTheSameDuration() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            let plain = try reel(
                [
                    "generate", "--prompt", "a kite", "--size", "64x64", "--frames", "9", "--steps", "2", "--seed", "3",
                    "--device", "cpu", "--out", "plain",
                ], in: directory, worker: .scripted)
            #expect(plain.status == 0, "\(plain.stderr)")
            let doubled = try reel(
                [
                    "generate", "--prompt", "a kite", "--size", "64x64", "--frames", "9", "--steps", "2", "--seed", "3",
                    "--interpolate", "2", "--style", "cinematic", "--device", "cpu", "--out", "doubled",
                ], in: directory, worker: .scripted)
            #expect(doubled.status == 0, "\(doubled.stderr)")
            let before = try TestSupport.probeVideo(directory.appendingPathComponent("plain/video.mp4").path)
            let after = try TestSupport.probeVideo(directory.appendingPathComponent("doubled/video.mp4").path)
            #expect(before.frames == 9 && before.fps == 24)
            #expect(after.frames == 17 && after.fps == 48)
            #expect(abs(Double(after.frames - 1) / after.fps - Double(before.frames - 1) / before.fps) < 1e-9)
            let metadata =
                try JSONSerialization.jsonObject(
                    with: Data(contentsOf: directory.appendingPathComponent("doubled/job.json"))) as? [String: Any]
            #expect(metadata?["interpolate"] as? Int == 2 && metadata?["frames"] as? Int == 17)
            #expect(metadata?["source_frames"] as? Int == 9 && metadata?["fps"] as? Int == 48)
            let recorded = metadata?["metadata"] as? [String: Any]
            #expect(recorded?["style"] as? String == "cinematic" && recorded?["user_prompt"] as? String == "a kite")
            #expect(
                (metadata?["prompt"] as? String)?.contains("a kite") == true
                    && metadata?["prompt"] as? String != "a kite")
        }
    }

    @Test func rifeInterpolatesWithTheGivenCheckpoint() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            // No RIFE weights can be downloaded here: a random IFNet of the supported layout stands in for them.
            let checkpoint = directory.appendingPathComponent("flownet.pkl").path
            _ = try TestSupport.runCapturing(
                TestSupport.engine.python,
                [
                    "-c",
                    "import sys, torch; sys.path.insert(0, sys.argv[2]); from reel_engine.rife import IFNet; "
                        + "torch.manual_seed(0); net = IFNet(); "
                        + "torch.save({'module.' + k: v for k, v in net.state_dict().items()}, sys.argv[1])",
                    checkpoint, TestSupport.engine.packageDirectory ?? "engine",
                ])
            let run = try reel(
                [
                    "generate", "--prompt", "a kite", "--size", "64x64", "--frames", "9", "--steps", "2",
                    "--interpolate", "2", "--rife", checkpoint, "--device", "cpu", "--out", "rife",
                ], in: directory)
            #expect(run.status == 0, "\(run.stderr)")
            let probe = try TestSupport.probeVideo(directory.appendingPathComponent("rife/video.mp4").path)
            #expect(probe.frames == 17 && probe.fps == 48)
            let metadata =
                try JSONSerialization.jsonObject(
                    with: Data(contentsOf: directory.appendingPathComponent("rife/job.json"))) as? [String: Any]
            #expect((metadata?["interpolation_method"] as? String)?.hasPrefix("rife:flownet.pkl") == true)
        }
    }

    @Test func stylesAreListedAndPreviewed() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            let list = try reel(["styles"], in: directory)
            #expect(list.status == 0)
            for name in ["cinematic", "product-turntable", "ink-wash", "documentary", "anime", "macro", "aerial"] {
                #expect(list.stdout.contains(name), "\(name) is listed")
            }
            #expect(list.stdout.contains("水墨"))
            let preview = try reel(["styles", "preview", "ink-wash", "--prompt", "一只白鹤"], in: directory)
            #expect(preview.status == 0 && preview.stdout.contains("一只白鹤"), "\(preview.stdout)\(preview.stderr)")
            try #"[{"name": "house-look", "prompt": "{prompt}, in our house look", "negative_prompt": "logos"}]"#
                .write(to: directory.appendingPathComponent("mine.json"), atomically: true, encoding: .utf8)
            let mine = try reel(["styles", "--styles", "mine.json"], in: directory)
            #expect(mine.stdout.contains("house-look"))
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
            let model = try reel(
                ["generate", "--prompt", "x", "--model", "/no/such/model", "--out", "o"], in: directory)
            #expect(model.status != 0 && model.stderr.contains("Wan-AI/Wan2.2"), "\(model.stderr)")
            let style = try reel(["generate", "--prompt", "x", "--style", "cinematc", "--out", "o"], in: directory)
            #expect(style.status != 0 && style.stderr.contains("cinematic"), "closest names: \(style.stderr)")
            let rife = try reel(
                ["generate", "--prompt", "x", "--rife", "/no/flownet.pkl", "--out", "o"], in: directory)
            #expect(rife.status != 0 && rife.stderr.contains("--rife"), "\(rife.stderr)")
            let interpolate = try reel(
                ["generate", "--prompt", "x", "--interpolate", "3", "--out", "o"], in: directory)
            #expect(interpolate.status != 0 && interpolate.stderr.contains("interpolate"), "\(interpolate.stderr)")
            #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("o").path))
            let relayout = try reel(["serve", "--placement", "auto", "--relayout-after=-5"], in: directory)
            #expect(
                relayout.status != 0 && relayout.stderr.contains("--relayout-after must be 0"), "\(relayout.stderr)")
        }
    }

    /// `reel generate` runs its job through the scheduler, so it gets `reel serve`'s supervision (scripted worker).
    @Test func generateRetriesAJobWhoseWorkerCrashedOrHung() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            let common = ["generate", "--size", "64x64", "--frames", "5", "--steps", "3", "--device", "cpu"]
            let faults = ["REEL_TEST_FAULTS": "1"]
            let crashed = try TestSupport.runReel(
                common + ["--prompt", "a fox [crash-once]", "--out", "crashed"], in: directory, environment: faults,
                worker: .scripted)
            #expect(crashed.status == 0, "\(crashed.stderr)")
            #expect(
                crashed.stderr.contains("attempt 1 failed: worker_crashed: the worker exited with status 70"),
                "\(crashed.stderr)")
            #expect(try TestSupport.probeVideo(directory.appendingPathComponent("crashed/video.mp4").path).frames == 5)

            let hung = try TestSupport.runReel(
                common + ["--prompt", "a fox [hang-once]", "--stall-timeout", "2", "--out", "hung"], in: directory,
                environment: faults, worker: .scripted)
            #expect(hung.status == 0, "\(hung.stderr)")
            #expect(
                hung.stderr.contains("attempt 1 failed: worker_stalled: stalled: no progress for 2.0 seconds"),
                "\(hung.stderr)")
            #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("hung/video.mp4").path))

            let poisoned = try TestSupport.runReel(
                common + ["--prompt", "a fox [crash]", "--max-attempts", "2", "--out", "poisoned"], in: directory,
                environment: faults, worker: .scripted)
            #expect(poisoned.status == 1)
            #expect(poisoned.stderr.contains("failed after 2 attempts"), "\(poisoned.stderr)")
            #expect(
                !FileManager.default.fileExists(atPath: directory.appendingPathComponent("poisoned/video.mp4").path))
        }
    }

    @Test func generateLeavesTheOtherFilesOfItsOutputDirectoryAlone() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            let mine = directory.appendingPathComponent("notes.txt")
            try "my notes".write(to: mine, atomically: true, encoding: .utf8)
            let run = try TestSupport.runReel(
                [
                    "generate", "--prompt", "a fox", "--size", "64x64", "--frames", "5", "--steps", "2", "--device",
                    "cpu",
                    "--out", ".",
                ], in: directory, worker: .scripted)
            #expect(run.status == 0, "\(run.stderr)")
            #expect(try String(contentsOf: mine, encoding: .utf8) == "my notes")
            #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("video.mp4").path))
        }
    }

    @Test func batchRunsTheGoodRowsAndReportsTheBadOnes() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            let csv =
                "\u{FEFF}prompt,size,frames,steps,seed\r\n"
                + "\"a fox, in snow\",64x64,5,2,1\r\n"
                + "a bad size,65x64,5,2,2\r\n"
                + "一只狐狸,64x64,9,2,3\r\n"
            try csv.write(to: directory.appendingPathComponent("prompts.csv"), atomically: true, encoding: .utf8)
            let run = try reel(["batch", "prompts.csv", "--devices", "cpu,cpu", "--out", "videos"], in: directory)
            #expect(run.status == 1, "one row was rejected, so the batch is not a full success")
            #expect(run.stderr.contains("row 3, column size"), "\(run.stderr)")
            let first = directory.appendingPathComponent("videos/002-a-fox-in-snow/video.mp4").path
            let third = directory.appendingPathComponent("videos/004-一只狐狸/video.mp4").path
            #expect(try TestSupport.probeVideo(first).frames == 5)
            #expect(try TestSupport.probeVideo(third).frames == 9)
            let report = try String(contentsOf: directory.appendingPathComponent("videos/report.csv"), encoding: .utf8)
            let lines = report.split(separator: "\r\n")
            #expect(lines.count == 4)
            #expect(lines[1].hasPrefix("2,002-a-fox-in-snow,succeeded,1,"))
            #expect(lines[2].hasPrefix("3,,rejected,") && lines[2].contains("size"))
            #expect(lines[3].hasPrefix("4,004-一只狐狸,succeeded,3,"))
        }
    }
}
