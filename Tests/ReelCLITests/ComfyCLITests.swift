import Foundation
import ReelTestSupport
import Testing

/// `reel models DIR` and `--model comfyui:DIR` on the command line, over header-only files.
@Suite struct ComfyCLITests {
    @Test func modelsListsAFolderAndTheModelItsTemplatesNamesPick() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            let models = directory.appendingPathComponent("models")
            try HeaderOnlyFiles.write(
                HeaderOnlyFiles.transformer(dim: 3072, inChannels: 48, blocks: 30, dtype: "F16"),
                to: models.appendingPathComponent("diffusion_models/wan2.2_ti2v_5B_fp16.safetensors"))
            try HeaderOnlyFiles.write(
                HeaderOnlyFiles.umt5,
                to: models.appendingPathComponent("text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors"))
            try HeaderOnlyFiles.write(
                HeaderOnlyFiles.vae(version: "wan2.2"), to: models.appendingPathComponent("vae/wan2.2_vae.safetensors"))
            let run = try TestSupport.runReel(["models", directory.path], in: directory)
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stdout.contains("diffusion_models/wan2.2_ti2v_5B_fp16.safetensors  transformer ti2v-5b  F16"))
            #expect(run.stdout.contains("vae/wan2.2_vae.safetensors  VAE wan2.2"))
            #expect(
                run.stdout.contains("default model: ti2v-5b (--model comfyui:\(models.path)?unet="), "\(run.stdout)")
            // A wrong choice is refused before any worker starts, naming the file.
            let wrong = try TestSupport.runReel(
                [
                    "generate", "--model", "comfyui:\(directory.path)", "--vae", "missing_vae.safetensors", "--prompt",
                    "a kite", "--device", "cpu", "--out", "clip",
                ], in: directory)
            #expect(
                wrong.status != 0 && wrong.stderr.contains("--vae missing_vae.safetensors: no such file"),
                "\(wrong.stderr)")
            #expect(!wrong.stderr.contains("starting the"))
        }
    }

    /// The tiny TI2V-5B model written as a ComfyUI folder (the engine's test writer: original key names with the
    /// `model.diffusion_model.` prefix, the nested 2.2 VAE, umT5 with its embedded SentencePiece model, the
    /// templates' file names), then used by `reel generate --model comfyui:DIR` with the real engine.
    @Test func generateRunsTheRealEngineFromAComfyUIFolder() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            let engine = TestSupport.engine
            let root = try #require(engine.packageDirectory)
            let script = """
                import pathlib, sys
                sys.path.insert(0, sys.argv[1] + "/tests")
                from reel_engine.models import load_model
                import test_comfy_files
                model = load_model("tiny", "cpu", sys.argv[3])
                print(test_comfy_files._folder(pathlib.Path(sys.argv[2]), model))
                """
            let written = try TestSupport.run(
                engine.python, ["-c", script, root, directory.path, TestSupport.dataDirectory],
                environment: ProcessInfo.processInfo.environment.merging(["PYTHONPATH": root]) { _, new in new })
            #expect(written.status == 0, "\(written.stderr.suffix(2000))")
            let models = directory.appendingPathComponent("ComfyUI/models")
            let listing = try TestSupport.runReel(["models", models.path], in: directory)
            #expect(listing.stdout.contains("transformer tiny:ti2v-5b"), "\(listing.stdout)")
            let run = try TestSupport.runReel(
                [
                    "generate", "--model", "comfyui:" + directory.appendingPathComponent("ComfyUI").path, "--prompt",
                    "a red fox walks through fresh snow", "--size", "64x64", "--frames", "5", "--steps", "2", "--seed",
                    "1", "--device", "cpu", "--out", "clip",
                ], in: directory, worker: .real)
            #expect(run.status == 0, "\(run.stderr.suffix(3000))")
            let probe = try TestSupport.probeVideo(directory.appendingPathComponent("clip/video.mp4").path)
            #expect(probe.frames == 5 && probe.width == 64 && probe.height == 64)
            let job =
                try JSONSerialization.jsonObject(
                    with: Data(contentsOf: directory.appendingPathComponent("clip/job.json"))) as? [String: Any]
            let files = String(describing: job?["model_files"] ?? "")
            #expect(
                files.contains("wan2.2_ti2v_5B_fp16.safetensors") && files.contains("wan2.2_vae.safetensors"),
                "\(files)")
        }
    }
}
