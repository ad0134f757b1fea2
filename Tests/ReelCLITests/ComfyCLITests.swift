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
}
