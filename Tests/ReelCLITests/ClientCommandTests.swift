import Foundation
import ReelCSV
import ReelClient
import ReelCore
import ReelTestSupport
import Testing

/// The client commands against a real `reel serve` with a tiny CPU worker.
@Suite(.serialized) struct ClientCommandTests {
    @Test func submitJobsWatchAndBatchAgainstAServer() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try ServerProcess(devices: "cpu", dataDirectory: directory.appendingPathComponent("server"))
            defer { server.stop() }
            try await server.waitUntilReady()
            let url = "http://127.0.0.1:\(server.port)"

            // submit --wait downloads the finished video.
            let submit = try TestSupport.runReel(
                [
                    "submit", "--server", url, "--prompt", "a kite over a beach", "--size", "32x32", "--frames", "5",
                    "--steps", "2", "--wait", "--out", "kite.mp4",
                ], in: directory)
            #expect(submit.status == 0, "\(submit.stderr)")
            let id = submit.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(id.hasPrefix("job_"))
            #expect(try TestSupport.probeVideo(directory.appendingPathComponent("kite.mp4").path).frames == 5)

            // jobs list / show.
            let list = try TestSupport.runReel(["jobs", "list", "--server", url], in: directory)
            #expect(list.status == 0 && list.stdout.contains(id) && list.stdout.contains("succeeded"))
            let show = try TestSupport.runReel(["jobs", "show", id, "--server", url], in: directory)
            #expect(show.stdout.contains("\"prompt\" : \"a kite over a beach\""), "\(show.stdout)")

            // A slow job (60 steps of 0.4 s, long enough that a loaded machine still cancels it mid-way) is
            // cancelled from the CLI while watch prints its events.
            let slow = try TestSupport.runReel(
                [
                    "submit", "--server", url, "--prompt", "a slow sunset [slow]", "--size", "32x32", "--frames", "5",
                    "--steps", "60",
                ], in: directory)
            let slowID = slow.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let watcher = Process()
            watcher.executableURL = TestSupport.reelExecutable
            watcher.arguments = ["watch", "--server", url, "--job", slowID]
            let watched = Pipe()
            watcher.standardOutput = watched
            try watcher.run()
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline, try await server.client.job(slowID).state != .running {
                try await Task.sleep(for: .milliseconds(100))
            }
            try await Task.sleep(for: .seconds(1))
            let cancel = try TestSupport.runReel(["jobs", "cancel", slowID, "--server", url], in: directory)
            #expect(cancel.status == 0, "\(cancel.stderr)")
            // Watching one job ends with that job.
            while ContinuousClock.now < deadline, watcher.isRunning {
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(!watcher.isRunning, "watch --job went on after the job was cancelled")
            if watcher.isRunning { watcher.terminate() }
            watcher.waitUntilExit()
            #expect(try await server.client.job(slowID).state == .cancelled)
            let events = String(decoding: watched.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(events.contains("progress") && events.contains("cancelled"), "\(events)")

            // batch --server --wait: one bad row reported, videos downloaded by row and prompt, report written.
            let csv =
                "prompt,size,frames,steps,seed,png_frames\r\nred kite,32x32,5,2,1,true\r\nbad,33x32,5,2,2,\r\n"
                + "蓝色风筝,32x32,5,2,3,\r\n"
            try csv.write(to: directory.appendingPathComponent("kites.csv"), atomically: true, encoding: .utf8)
            let batch = try TestSupport.runReel(
                ["batch", "kites.csv", "--server", url, "--wait", "--out", "kites"], in: directory)
            #expect(batch.status == 1, "a rejected row makes the batch incomplete: \(batch.stderr)")
            #expect(batch.stderr.contains("row 3, column size"))
            let first = directory.appendingPathComponent("kites/002-red-kite/video.mp4").path
            let third = directory.appendingPathComponent("kites/004-蓝色风筝/video.mp4").path
            #expect(try TestSupport.probeVideo(first).frames == 5)
            #expect(try TestSupport.probeVideo(third).frames == 5)
            #expect(
                FileManager.default.fileExists(
                    atPath: directory.appendingPathComponent("kites/002-red-kite/job.json").path))
            // Everything a job made comes home: the PNG frames of the row that asked for them, 32x32 each.
            let frames = directory.appendingPathComponent("kites/002-red-kite/frames")
            let names = try FileManager.default.contentsOfDirectory(atPath: frames.path).sorted()
            #expect(names == (1...5).map { String(format: "%06d.png", $0) })
            let png = try Data(contentsOf: frames.appendingPathComponent("000005.png"))
            #expect(try ImageHeader.read(png, field: "frame", limits: .standard).width == 32)
            #expect(
                !FileManager.default.fileExists(atPath: directory.appendingPathComponent("kites/004-蓝色风筝/frames").path))
            let report = try String(contentsOf: directory.appendingPathComponent("kites/report.csv"), encoding: .utf8)
            #expect(
                report.contains(",succeeded,1,") && report.contains(",rejected,") && report.contains(",succeeded,3,"))
            // The report's output column names the files here, not the server's paths.
            let table = try CSVReader.parse(report, maxRows: nil)
            let outputs = table.rows.map { $0.fields[4] }
            #expect(outputs == [first, "", third], "\(outputs)")
        }
    }

    @Test func submitSendsTheSeedToTheLastDigit() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try ServerProcess(devices: "cpu", dataDirectory: directory.appendingPathComponent("server"))
            defer { server.stop() }
            try await server.waitUntilReady()
            let url = "http://127.0.0.1:\(server.port)"
            // Above 2^53 a Double holds no odd integer, and 2^63 - 1 rounds up to 2^63, past the largest seed.
            for seed in ["9007199254740993", "9223372036854775807"] {
                let submit = try TestSupport.runReel(
                    [
                        "submit", "--server", url, "--prompt", "a seeded kite", "--size", "32x32", "--frames", "5",
                        "--steps", "2", "--seed", seed,
                    ], in: directory)
                #expect(submit.status == 0, "\(submit.stderr)")
                let id = submit.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                let job = String(decoding: try await server.client.send(.GET, "/v1/jobs/\(id)"), as: UTF8.self)
                // Every digit, and nothing after them: the key is followed by the next one or the object's end
                // (JSON objects come in no fixed key order).
                #expect(job.contains(#""seed":\#(seed),"#) || job.contains(#""seed":\#(seed)}"#), "\(job)")
            }
            let tooLarge = try TestSupport.runReel(
                ["submit", "--server", url, "--prompt", "a kite", "--seed", "9223372036854775808"], in: directory)
            #expect(tooLarge.status != 0 && tooLarge.stderr.contains("seed"), "\(tooLarge.stderr)")
        }
    }

    @Test func submitSendsLoRAsAndTheServerRefusesAnUnknownOne() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            try LoRAFixtures.write(
                LoRAFixtures.pairs(.tiny, rank: 4, layout: .kohya), name: "tiny_detail",
                in: directory.appendingPathComponent("server/loras"))
            let server = try ServerProcess(devices: "cpu", dataDirectory: directory.appendingPathComponent("server"))
            defer { server.stop() }
            try await server.waitUntilReady()
            let url = "http://127.0.0.1:\(server.port)"
            let base = [
                "submit", "--server", url, "--prompt", "a kite", "--size", "32x32", "--frames", "5", "--steps", "2",
            ]
            let submit = try TestSupport.runReel(base + ["--lora", "tiny_detail:0.6"], in: directory)
            #expect(submit.status == 0, "\(submit.stderr)")
            let id = submit.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let job = String(decoding: try await server.client.send(.GET, "/v1/jobs/\(id)"), as: UTF8.self)
            #expect(job.contains(#""name":"tiny_detail""#) && job.contains(#""scale":0.6"#), "\(job)")
            let unknown = try TestSupport.runReel(base + ["--lora", "tiny_detial"], in: directory)
            #expect(unknown.status != 0 && unknown.stderr.contains("the closest are tiny_detail"), "\(unknown.stderr)")
        }
    }
}
