import Foundation

/// Resolves a model name the user typed into a `ModelInfo`, without loading any weights.
///
/// Built-in names need no files. A directory is recognised from its diffusers `model_index.json` and component
/// configs; a missing or incomplete directory is an error that names the missing part and what to download.
public enum ModelCatalog {
    /// The names that need no files, from the model catalog (engine/reel_engine/catalog.json).
    public static let builtInNames = CatalogData.models.map(\.name)

    public static func resolve(_ name: String) throws(ReelError) -> ModelInfo {
        if let entry = CatalogData.model(named: name), let architecture = Architecture(rawValue: entry.architecture) {
            return ModelInfo(
                name: name, architecture: architecture, randomWeights: true,
                defaults: GenerationDefaults(entry.defaults))
        }
        if let spec = try ComfyModelSpec.parse(name) {
            return try ComfyFolder(spec.folder).resolve(spec).0
        }
        if name.hasPrefix("tiny:") || name.hasPrefix("random:") {
            throw ReelError(
                .modelNotFound, field: "model",
                "unknown model '\(name)'; built-in models are \(builtInNames.joined(separator: ", ")), "
                    + "or give the path of a diffusers-format Wan2.2 directory")
        }
        return try inspectDirectory(name)
    }

    /// Reads a diffusers-format Wan2.2 directory's configs to learn its architecture.
    static func inspectDirectory(_ path: String) throws(ReelError) -> ModelInfo {
        let root = URL(fileURLWithPath: path)
        let hint =
            "download \(Architecture.allCases.map(\.downloadName).joined(separator: ", ")) "
            + "(for example with `hf download`) and pass its directory"
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ReelError(
                .modelNotFound, field: "model",
                "model '\(path)' is neither a built-in model (\(builtInNames.joined(separator: ", "))) "
                    + "nor an existing directory; \(hint)")
        }
        guard let index = readJSON(root.appendingPathComponent("model_index.json")) else {
            throw ReelError(
                .modelNotFound, field: "model",
                "model directory '\(path)' has no readable model_index.json, so it is not a diffusers model; \(hint)")
        }
        // Two experts: T2V-A14B, or I2V-A14B when the pipeline is diffusers' image-to-video one (or its transformer
        // takes the image latent and mask beside the noise: 36 input channels rather than 16).
        let architecture: Architecture
        if index["transformer_2"] != nil {
            let inChannels = readJSON(root.appendingPathComponent("transformer/config.json"))?["in_channels"] as? Int
            architecture =
                index["_class_name"] as? String == "WanImageToVideoPipeline" || inChannels == 36 ? .i2vA14B : .t2vA14B
        } else {
            architecture = .ti2v5B
        }
        var required = ["transformer", "vae", "text_encoder", "tokenizer", "scheduler"]
        if architecture != .ti2v5B { required.append("transformer_2") }
        for component in required {
            let folder = root.appendingPathComponent(component)
            guard FileManager.default.fileExists(atPath: folder.path) else {
                throw ReelError(
                    .modelNotFound, field: "model",
                    "model directory '\(path)' lacks the component '\(component)'; "
                        + "download \(architecture.downloadName) completely")
            }
        }
        // The Wan2.1 VAE (z_dim 16) compresses 8x; the Wan2.2 VAE (z_dim 48) 16x. TI2V-5B uses the latter.
        if let vae = readJSON(root.appendingPathComponent("vae/config.json")),
            let zDim = vae["z_dim"] as? Int
        {
            let expected = architecture == .ti2v5B ? 48 : 16
            if zDim != expected {
                throw ReelError(
                    .modelNotFound, field: "model",
                    "model directory '\(path)' pairs a \(architecture.rawValue) layout with a VAE of z_dim \(zDim) "
                        + "(expected \(expected)); it is not a Wan2.2 model Reel supports")
            }
        }
        return ModelInfo(
            name: path, architecture: architecture, randomWeights: false, defaults: .fullSize(architecture))
    }

    private static func readJSON(_ url: URL) -> [String: Any]? {
        guard let data = try? Data(contentsOf: url),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        return object
    }
}
