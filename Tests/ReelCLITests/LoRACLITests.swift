import Foundation
import ReelTestSupport
import Testing

/// `reel loras` and `--lora`/`--recipe` on `reel generate`: the library as the command line shows it, and LoRAs
/// refused before any worker starts.
@Suite struct LoRACLITests {
    /// A library of a tiny-model LoRA in two layouts and one for full-size TI2V-5B.
    func withLibrary(_ body: (URL, URL) throws -> Void) throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            let library = directory.appendingPathComponent("loras")
            try LoRAFixtures.write(LoRAFixtures.pairs(.tiny, rank: 4, layout: .kohya), name: "tiny_kohya", in: library)
            try LoRAFixtures.write(
                LoRAFixtures.pairs(.tiny, rank: 8, layout: .musubi), name: "tiny_musubi", in: library)
            try LoRAFixtures.write(
                LoRAFixtures.pairs(.ti2v5B, rank: 2, layout: .diffusers, blocks: 0..<1), name: "five", in: library)
            try body(directory, library)
        }
    }

    @Test func lorasListsTheLibrary() throws {
        try withLibrary { directory, library in
            let run = try TestSupport.runReel(["loras", "--lora-dir", library.path], in: directory)
            #expect(run.status == 0, "\(run.stderr)")
            let lines = run.stdout.split(separator: "\n").map(String.init)
            #expect(lines.count == 3)
            #expect(lines[0].hasPrefix("five  diffusers  rank 2") && lines[0].contains("fits ti2v-5b"))
            #expect(lines[2].hasPrefix("tiny_musubi  musubi  rank 8"))
            let json = try TestSupport.runReel(["loras", "--lora-dir", library.path, "--json"], in: directory)
            let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
            let data = try #require(object?["data"] as? [[String: Any]])
            #expect(data.map { $0["name"] as? String } == ["five", "tiny_kohya", "tiny_musubi"])
            #expect(data[1]["architectures"] as? [String] == ["tiny:ti2v-5b", "tiny:t2v-a14b", "tiny:i2v-a14b"])
            let empty = try TestSupport.runReel(
                ["loras", "--lora-dir", directory.appendingPathComponent("none").path], in: directory)
            #expect(empty.status == 0 && empty.stdout.contains("no LoRAs in"))
        }
    }

    @Test func generateAppliesALoRAOnOneExpertAndRecordsIt() throws {
        try withLibrary { directory, library in
            let run = try TestSupport.runReel(
                [
                    "generate", "--model", "tiny:t2v-a14b", "--prompt", "a kite over dunes", "--size", "32x32",
                    "--frames", "5", "--steps", "2", "--seed", "2", "--device", "cpu", "--out", "clip",
                    "--lora-dir", library.path, "--lora", "tiny_kohya:0.7@low", "--lora", "tiny_musubi@high",
                    "--lora-max-rank", "8",
                ], in: directory, worker: .real)
            #expect(run.status == 0, "\(run.stderr)")
            let probe = try TestSupport.probeVideo(directory.appendingPathComponent("clip/video.mp4").path)
            #expect(probe.frames == 5 && probe.width == 32)
            let job =
                try JSONSerialization.jsonObject(
                    with: Data(contentsOf: directory.appendingPathComponent("clip/job.json"))) as? [String: Any]
            let loras = try #require(job?["loras"] as? [[String: Any]])
            #expect(loras.map { $0["name"] as? String } == ["tiny_kohya", "tiny_musubi"])
            #expect(
                loras.map { $0["scale"] as? Double } == [0.7, 1]
                    && loras.map { $0["expert"] as? String } == ["low", "high"])
        }
    }

    @Test func aBadLoRAIsRefusedBeforeAnyWorkerStarts() throws {
        try withLibrary { directory, library in
            let base = [
                "generate", "--prompt", "a fox", "--frames", "5", "--steps", "2", "--size", "64x64", "--device", "cpu",
                "--out", "clip", "--lora-dir", library.path,
            ]
            let unknown = try TestSupport.runReel(
                base + ["--model", "tiny:t2v-a14b", "--lora", "tiny_kohay"], in: directory)
            #expect(unknown.status != 0)
            #expect(
                unknown.stderr.contains("unknown LoRA 'tiny_kohay'; the closest are tiny_kohya"), "\(unknown.stderr)")
            let five = try TestSupport.runReel(
                base + ["--model", "tiny:t2v-a14b", "--lora", "five:0.5"], in: directory)
            #expect(five.stderr.contains("five is a LoRA for ti2v-5b (dim 3072)"), "\(five.stderr)")
            let expert = try TestSupport.runReel(base + ["--model", "tiny", "--lora", "tiny_kohya@low"], in: directory)
            #expect(expert.stderr.contains("ti2v-5b has one transformer"), "\(expert.stderr)")
            let syntax = try TestSupport.runReel(
                base + ["--model", "tiny", "--lora", "tiny_kohya:lots"], in: directory)
            #expect(
                syntax.stderr.contains("--lora: LoRA 'tiny_kohya:lots': the scale after : is not a number"),
                "\(syntax.stderr)")
            let recipe = try TestSupport.runReel(
                base + ["--model", "tiny:t2v-a14b", "--recipe", "lightning-4step"], in: directory)
            #expect(recipe.stderr.contains("steps: recipe lightning-4step takes 4 steps, not 2"), "\(recipe.stderr)")
            let noPair =
                base.filter { $0 != "--steps" && $0 != "2" } + [
                    "--model", "tiny:t2v-a14b", "--recipe", "lightning-4step",
                ]
            let pairless = try TestSupport.runReel(noPair, in: directory)
            #expect(pairless.stderr.contains("--recipe-lora lightning-4step=HIGH,LOW"), "\(pairless.stderr)")
            for run in [unknown, five, expert, syntax, recipe, pairless] {
                #expect(!run.stderr.contains("starting the"), "refused before a worker starts: \(run.stderr)")
            }
            #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("clip").path))
        }
    }
}
