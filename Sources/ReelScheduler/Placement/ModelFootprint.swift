import Foundation
import ReelCore

/// What a model needs in device memory, and how many attention heads a parallel group can share out.
public struct ModelFootprint: Sendable, Equatable {
    /// The transformer's attention heads (`num_attention_heads`); a parallel group's size must divide it.
    public var attentionHeads: Int
    /// The text encoder's weights.
    public var textEncoderBytes: Int64
    /// The transformer(s) and the VAE, with room for a job's activations.
    public var denoiserBytes: Int64

    public init(attentionHeads: Int, textEncoderBytes: Int64, denoiserBytes: Int64) {
        self.attentionHeads = attentionHeads
        self.textEncoderBytes = textEncoderBytes
        self.denoiserBytes = denoiserBytes
    }

    public var totalBytes: Int64 { textEncoderBytes + denoiserBytes }

    static let gib: Int64 = 1 << 30
    /// Room for a job's activations at the models' default sizes, beyond the weights.
    static let workingBytes: Int64 = 12 * gib

    /// The footprint of a model as `reel` names it: built-in sizes for the built-in models (bf16 weights of
    /// UMT5-XXL, the 5B or two 14B transformers and the VAE), the weight files and transformer config of a
    /// diffusers directory otherwise.
    public static func of(_ model: ModelInfo, path: String? = nil) -> ModelFootprint {
        let umt5 = 11_400_000_000 as Int64
        if model.isTiny {
            return ModelFootprint(attentionHeads: 2, textEncoderBytes: 1 << 20, denoiserBytes: 16 << 20)
        }
        if let path, FileManager.default.fileExists(atPath: path + "/model_index.json") {
            let heads =
                Self.readHeads(path + "/transformer/config.json")
                ?? Self.readHeads(path + "/transformer_2/config.json")
            let text = Self.weightBytes(path + "/text_encoder")
            let denoiser =
                Self.weightBytes(path + "/transformer") + Self.weightBytes(path + "/transformer_2")
                + Self.weightBytes(path + "/vae")
            let fallback = Self.of(
                ModelInfo(
                    name: "random:" + model.architecture.rawValue, architecture: model.architecture,
                    randomWeights: true,
                    defaults: model.defaults))
            return ModelFootprint(
                attentionHeads: heads ?? fallback.attentionHeads,
                textEncoderBytes: text > 0 ? text : fallback.textEncoderBytes,
                denoiserBytes: denoiser > 0 ? denoiser + workingBytes : fallback.denoiserBytes)
        }
        switch model.architecture {
        case .ti2v5B:
            return ModelFootprint(
                attentionHeads: 24, textEncoderBytes: umt5, denoiserBytes: 10_000_000_000 + 1_400_000_000 + workingBytes
            )
        case .t2vA14B, .i2vA14B:
            return ModelFootprint(
                attentionHeads: 40, textEncoderBytes: umt5, denoiserBytes: 57_000_000_000 + 500_000_000 + workingBytes)
        }
    }

    static func readHeads(_ path: String) -> Int? {
        guard let data = FileManager.default.contents(atPath: path),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        return (object["num_attention_heads"] as? NSNumber)?.intValue
    }

    /// The size of the weight files (`*.safetensors`, `*.bin`) in a component's folder.
    static func weightBytes(_ directory: String) -> Int64 {
        let fileManager = FileManager.default
        guard let names = try? fileManager.contentsOfDirectory(atPath: directory) else { return 0 }
        var total: Int64 = 0
        for name in names where name.hasSuffix(".safetensors") || name.hasSuffix(".bin") {
            let attributes = try? fileManager.attributesOfItem(atPath: directory + "/" + name)
            total += (attributes?[.size] as? NSNumber)?.int64Value ?? 0
        }
        return total
    }

    /// The group sizes that divide the heads, up to `limit`.
    public func validGroupSizes(upTo limit: Int) -> [Int] {
        guard limit >= 2 else { return [] }
        return (2...limit).filter { attentionHeads % $0 == 0 }
    }
}
