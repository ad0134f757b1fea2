import Foundation
import ReelTestSupport
import Testing

@testable import ReelCore

/// A ComfyUI model folder read from its files' headers: what each file is, the model the templates' names pick, and
/// every mismatch refused naming the file.
@Suite struct ComfyFolderTests {
    /// A folder with the files of the official templates for T2V-A14B (fp8-scaled) and TI2V-5B, as header-only files.
    func withFolder(_ body: (URL) throws -> Void) throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            let models = directory.appendingPathComponent("ComfyUI/models")
            let unets = models.appendingPathComponent("diffusion_models")
            for noise in ["high", "low"] {
                try HeaderOnlyFiles.write(
                    HeaderOnlyFiles.transformer(dim: 5120, inChannels: 16, blocks: 40, fp8: true),
                    to: unets.appendingPathComponent("wan2.2_t2v_\(noise)_noise_14B_fp8_scaled.safetensors"))
            }
            try HeaderOnlyFiles.write(
                HeaderOnlyFiles.transformer(dim: 5120, inChannels: 36, blocks: 40, prefix: "model.diffusion_model."),
                to: unets.appendingPathComponent("i2v_high_bf16.safetensors"))
            try HeaderOnlyFiles.write(
                HeaderOnlyFiles.transformer(dim: 3072, inChannels: 48, blocks: 30, dtype: "F16"),
                to: unets.appendingPathComponent("five.safetensors"))
            try HeaderOnlyFiles.write(
                HeaderOnlyFiles.transformer(dim: 5120, inChannels: 16, blocks: 40, fp8: true, scales: false),
                to: unets.appendingPathComponent("unscaled.safetensors"))
            try HeaderOnlyFiles.write(
                HeaderOnlyFiles.transformer(
                    dim: 5120, inChannels: 16, blocks: 40, fp8: true, scales: false, marker: false),
                to: unets.appendingPathComponent("plain_fp8.safetensors"))
            try HeaderOnlyFiles.write(
                HeaderOnlyFiles.umt5, to: models.appendingPathComponent("text_encoders/umt5_xxl_fp16.safetensors"))
            try HeaderOnlyFiles.write(
                HeaderOnlyFiles.vae(version: "wan2.1"), to: models.appendingPathComponent("vae/wan_2.1_vae.safetensors")
            )
            try HeaderOnlyFiles.write(
                HeaderOnlyFiles.vae(version: "wan2.2"), to: models.appendingPathComponent("vae/wan2.2_vae.safetensors"))
            try body(directory.appendingPathComponent("ComfyUI"))
        }
    }

    @Test func eachFileIsToldFromItsTensors() throws {
        try withFolder { comfy in
            let folder = try ComfyFolder(comfy.path)
            #expect(folder.root.lastPathComponent == "models", "the folder that has models/ is taken as its models/")
            let rows = Dictionary(uniqueKeysWithValues: folder.listing().map { ($0.name, $0.file) })
            let high = try #require(rows["wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors"] ?? nil)
            #expect(high.kind == .transformer && high.architecture == .t2vA14B && high.fp8Scaled && !high.tiny)
            let i2v = try #require(rows["i2v_high_bf16.safetensors"] ?? nil)
            #expect(i2v.architecture == .i2vA14B && i2v.dtypes.first == "BF16", "the prefix is read through")
            #expect(rows["five.safetensors"]??.architecture == .ti2v5B)
            #expect(rows["unscaled.safetensors"]??.problem?.contains("no scale_weight") == true)
            let plain = try #require(rows["plain_fp8.safetensors"] ?? nil)
            #expect(plain.problem == nil && !plain.fp8Scaled && plain.dtypes.first == "F8_E4M3", "plain fp8: scale 1")
            #expect(rows["umt5_xxl_fp16.safetensors"]??.kind == .textEncoder)
            #expect(rows["wan2.2_vae.safetensors"]??.vaeVersion == "wan2.2")
            #expect(rows["wan_2.1_vae.safetensors"]??.vaeVersion == "wan2.1")
        }
    }

    @Test func theTemplatesNamesPickTheModelAndItsFiles() throws {
        try withFolder { comfy in
            let info = try ModelCatalog.resolve("comfyui:" + comfy.path)
            #expect(info.architecture == .t2vA14B && !info.isTiny && !info.randomWeights)
            let spec = try #require(try ComfyModelSpec.parse(info.name))
            #expect(spec.unetHigh == "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors")
            #expect(spec.textEncoder == "umt5_xxl_fp16.safetensors" && spec.vae == "wan_2.1_vae.safetensors")
            #expect(spec.folder.hasSuffix("ComfyUI/models"))
            #expect(
                spec.workerArguments.prefix(4)
                    == [
                        "--model", "comfyui:" + spec.folder, "--unet-high",
                        "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors",
                    ])
            #expect(try ComfyModelSpec.parse(spec.name) == spec, "the name reads back")
            let five = try ModelCatalog.resolve(
                "comfyui:\(comfy.path)?unet=five.safetensors&vae=wan2.2_vae.safetensors")
            #expect(five.architecture == .ti2v5B && five.defaults == .fullSize(.ti2v5B))
        }
    }

    @Test(arguments: [
        (
            "?unet=five.safetensors&vae=wan_2.1_vae.safetensors",
            "is the wan2.1 VAE; ti2v-5b needs the wan2.2 VAE (wan2.2_vae.safetensors)"
        ),
        ("?unet=wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors", "is a t2v-a14b expert; that model has two"),
        ("?unet_high=five.safetensors&unet_low=five.safetensors", "is a TI2V-5B transformer, which has one expert"),
        (
            "?unet_high=wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors&unet_low=i2v_high_bf16.safetensors",
            "is a i2v-a14b transformer, not the t2v-a14b of --unet-high"
        ),
        ("?unet_high=unscaled.safetensors&unet_low=unscaled.safetensors", "fp8 weights have no scale_weight"),
        ("?unet_high=wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors", "needs both experts"),
        ("?unet=gone.safetensors", "--unet gone.safetensors: no such file in"),
        ("?unet=umt5_xxl_fp16.safetensors", "no such file"),
        (
            "?unet_high=wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors&unet_low=wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors&vae=wan2.2_vae.safetensors",
            "is the wan2.2 VAE; t2v-a14b needs the wan2.1 VAE"
        ),
        ("?unet=five.safetensors&vae=wan2.2_vae.safetensors&text_encoder=wan2.2_vae.safetensors", "no such file"),
        ("?colour=red", "is not one of unet=FILE"),
    ])
    func aWrongFileIsAnErrorNamingIt(_ query: String, _ says: String) throws {
        try withFolder { comfy in
            #expect {
                try ModelCatalog.resolve("comfyui:" + comfy.path + query)
            } throws: { error in
                guard let error = error as? ReelError else { return false }
                return error.code == .modelNotFound && error.message.contains(says)
            }
        }
    }

    @Test func aFolderWithoutModelsIsRefused() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            #expect(throws: ReelError.self) { try ModelCatalog.resolve("comfyui:" + directory.path) }
        }
    }
}
