import Foundation

/// A model kept as a ComfyUI `models/` folder holds it: the transformer(s) in `diffusion_models/` (or `unet/`), the
/// text encoder in `text_encoders/` (or `clip/`), the VAE in `vae/`, each a single .safetensors file.
///
/// Its name is `comfyui:DIR`, optionally with the files chosen: `comfyui:DIR?unet=FILE`, or for the two-expert
/// models `?unet_high=FILE&unet_low=FILE`, plus `text_encoder=FILE` and `vae=FILE` (file names in their folder, or
/// absolute paths). Without a choice, the files the official ComfyUI templates name are looked for.
public struct ComfyModelSpec: Sendable, Equatable {
    public var folder: String
    public var unet: String?
    public var unetHigh: String?
    public var unetLow: String?
    public var textEncoder: String?
    public var vae: String?

    public static let prefix = "comfyui:"

    public init(
        folder: String, unet: String? = nil, unetHigh: String? = nil, unetLow: String? = nil,
        textEncoder: String? = nil, vae: String? = nil
    ) {
        self.folder = folder
        self.unet = unet
        self.unetHigh = unetHigh
        self.unetLow = unetLow
        self.textEncoder = textEncoder
        self.vae = vae
    }

    static let keys = ["unet", "unet_high", "unet_low", "text_encoder", "vae"]

    /// Reads `comfyui:DIR[?key=value&…]`; nil for a name of another kind.
    public static func parse(_ name: String) throws(ReelError) -> ComfyModelSpec? {
        guard name.hasPrefix(prefix) else { return nil }
        let rest = name.dropFirst(prefix.count)
        let parts = rest.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let folder = String(parts[0])
        guard !folder.isEmpty else {
            throw ReelError(.modelNotFound, field: "model", "comfyui: needs a folder: comfyui:/path/to/ComfyUI/models")
        }
        var spec = ComfyModelSpec(folder: folder)
        if parts.count == 2 {
            for item in parts[1].split(separator: "&") {
                let pair = item.split(separator: "=", maxSplits: 1).map(String.init)
                guard pair.count == 2, keys.contains(pair[0]), !pair[1].isEmpty else {
                    throw ReelError(
                        .modelNotFound, field: "model",
                        "\(String(item).quotedForMessage()) in \(name.quotedForMessage(limit: 200)) is not one of "
                            + keys.map { "\($0)=FILE" }.joined(separator: ", "))
                }
                switch pair[0] {
                case "unet": spec.unet = pair[1]
                case "unet_high": spec.unetHigh = pair[1]
                case "unet_low": spec.unetLow = pair[1]
                case "text_encoder": spec.textEncoder = pair[1]
                default: spec.vae = pair[1]
                }
            }
        }
        return spec
    }

    /// The name that `parse` reads back.
    public var name: String {
        let choices = [
            ("unet", unet), ("unet_high", unetHigh), ("unet_low", unetLow), ("text_encoder", textEncoder),
            ("vae", vae),
        ].compactMap { key, value in value.map { "\(key)=\($0)" } }
        return Self.prefix + folder + (choices.isEmpty ? "" : "?" + choices.joined(separator: "&"))
    }

    /// The worker's command line for this model: `--model comfyui:DIR` and a flag per chosen file.
    public var workerArguments: [String] {
        var arguments = ["--model", Self.prefix + folder]
        for (flag, value) in [
            ("--unet", unet), ("--unet-high", unetHigh), ("--unet-low", unetLow), ("--text-encoder", textEncoder),
            ("--vae", vae),
        ] {
            if let value { arguments += [flag, value] }
        }
        return arguments
    }
}

/// What a single .safetensors file of a ComfyUI folder is, read from its header alone.
public struct ComfyFile: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case transformer, vae, textEncoder = "text_encoder", lora, unknown
    }

    public var path: String
    public var bytes: Int
    public var kind: Kind
    /// For a transformer: the model it is; for a VAE: `wan2.2` or `wan2.1`.
    public var architecture: Architecture?
    public var tiny: Bool
    public var vaeVersion: String?
    /// The weights' dtypes, the one of most elements first (`F8_E4M3`, `BF16` …), and whether fp8 weights carry
    /// scales.
    public var dtypes: [String]
    public var fp8Scaled: Bool
    /// Why Reel cannot use it as what it looks like (fp8 weights without scales), or nil.
    public var problem: String?

    /// Reads a file's header and tells what it is.
    public static func describe(_ url: URL) throws(ReelError) -> ComfyFile {
        let tensors = try LoRAFile.readHeader(at: url, field: "model")
        let bytes = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)?.intValue ?? 0
        var names = [String: [Int]]()
        var counts = [String: Int]()
        for tensor in tensors {
            var name = tensor.name
            for prefix in ["model.diffusion_model.", "diffusion_model."] where name.hasPrefix(prefix) {
                name = String(name.dropFirst(prefix.count))
                break
            }
            names[name] = tensor.shape
            // By elements, so an fp8-scaled file reads as fp8 however many small fp32 tensors it has.
            counts[tensor.dtype, default: 0] += tensor.shape.reduce(1) {
                $0.multipliedReportingOverflow(by: $1).partialValue
            }
        }
        let dtypes = counts.sorted { $0.value == $1.value ? $0.key < $1.key : $0.value > $1.value }.map(\.key)
        let fp8Weights = tensors.filter { $0.dtype.hasPrefix("F8") && $0.name.hasSuffix(".weight") }
        let scaled = fp8Weights.allSatisfy { weight in
            let stem = String(weight.name.dropLast(".weight".count))
            return tensors.contains { $0.name == stem + ".scale_weight" || $0.name == stem + ".weight_scale" }
        }
        var file = ComfyFile(
            path: url.path, bytes: bytes, kind: .unknown, architecture: nil, tiny: false, vaeVersion: nil,
            dtypes: dtypes, fp8Scaled: !fp8Weights.isEmpty && scaled, problem: nil)
        // A file marked as scaled (`scaled_fp8`, or scales beside some weights) must have a scale beside every fp8
        // weight: loading it without one would compute with the raw fp8 values. Plain fp8 files (no marker, no
        // scales) exist too and are read at scale 1, as the engine does.
        let marked = names.keys.contains {
            $0 == "scaled_fp8" || $0.hasSuffix(".scale_weight") || $0.hasSuffix(".weight_scale")
        }
        if !fp8Weights.isEmpty && !scaled && marked {
            file.problem =
                "it is marked fp8-scaled, but some fp8 weights have no scale_weight or weight_scale beside them"
        }
        if let patch = names["patch_embedding.weight"], names["head.modulation"] != nil, patch.count == 5 {
            file.kind = .transformer
            let dim = patch[0]
            let inChannels = patch[1]
            let blocks = Set(names.keys.compactMap { LoRAFile.Module.blockIndex($0) }).count
            let fit = ModelFit.all.first { fit in
                let shape = fit.shape
                return shape.dim == dim && shape.inChannels == inChannels && shape.blocks == blocks
            }
            file.architecture = fit?.architecture
            file.tiny = fit?.tiny ?? false
            if fit == nil {
                file.problem =
                    "a Wan transformer of width \(dim), \(inChannels) input channels and \(blocks) blocks, which is "
                    + "no Wan2.2 model (TI2V-5B: 3072, 48, 30; T2V-A14B: 5120, 16, 40; I2V-A14B: 5120, 36, 40)"
            }
        } else if names.keys.contains(where: { $0.hasPrefix("decoder.") }),
            names.keys.contains(where: { $0.hasPrefix("encoder.") })
        {
            file.kind = .vae
            // The Wan2.2 VAE's decoder is nested (decoder.upsamples.N.upsamples.M…); the Wan2.1 one is flat.
            file.vaeVersion =
                names.keys.contains(where: { $0.hasPrefix("decoder.upsamples.0.upsamples.") }) ? "wan2.2" : "wan2.1"
        } else if names["shared.weight"] != nil || names["encoder.final_layer_norm.weight"] != nil {
            file.kind = .textEncoder
        } else if tensors.contains(where: { $0.name.contains("lora_") || $0.name.hasSuffix(".diff") }) {
            file.kind = .lora
        }
        return file
    }
}

/// A ComfyUI `models/` folder: where each kind of file is, and the model a `ComfyModelSpec` picks from it.
public struct ComfyFolder: Sendable {
    /// The `models/` folder.
    public var root: URL

    /// `path` itself when it has the model subfolders, else its `models/` when that has them.
    public init(_ path: String) throws(ReelError) {
        let url = URL(fileURLWithPath: path)
        let fileManager = FileManager.default
        func hasModels(_ candidate: URL) -> Bool {
            Self.folders.values.flatMap { $0 }.contains {
                fileManager.fileExists(atPath: candidate.appendingPathComponent($0).path)
            }
        }
        if hasModels(url) {
            root = url
        } else if hasModels(url.appendingPathComponent("models")) {
            root = url.appendingPathComponent("models")
        } else {
            throw ReelError(
                .modelNotFound, field: "model",
                "\(path) is not a ComfyUI model folder: it has no diffusion_models/, text_encoders/ or vae/ (nor a "
                    + "models/ folder that has them)")
        }
    }

    /// The subfolders of each kind, as ComfyUI's folder_paths.py names them (the first is the current name).
    static let folders: [ComfyFile.Kind: [String]] = [
        .transformer: ["diffusion_models", "unet"], .textEncoder: ["text_encoders", "clip"], .vae: ["vae"],
        .lora: ["loras"],
    ]

    /// The file names the official ComfyUI Wan2.2 templates use.
    public static func defaultUnets(_ architecture: Architecture) -> [String] {
        switch architecture {
        case .ti2v5B: ["wan2.2_ti2v_5B_fp16.safetensors"]
        case .t2vA14B:
            [
                "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors", "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors",
            ]
        case .i2vA14B:
            [
                "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors", "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors",
            ]
        }
    }
    public static let defaultTextEncoders = [
        "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "umt5_xxl_fp16.safetensors",
    ]
    public static func defaultVAE(_ architecture: Architecture) -> String {
        architecture == .ti2v5B ? "wan2.2_vae.safetensors" : "wan_2.1_vae.safetensors"
    }

    /// The file `name` of that kind: an absolute path as it is, else the first of the kind's subfolders holding it.
    public func file(_ name: String, kind: ComfyFile.Kind) -> URL? {
        if name.hasPrefix("/") {
            return FileManager.default.fileExists(atPath: name) ? URL(fileURLWithPath: name) : nil
        }
        for folder in Self.folders[kind] ?? [] {
            let url = root.appendingPathComponent(folder).appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: url.path) { return url }
        }
        return nil
    }

    /// Every .safetensors file of the model subfolders, described.
    public func listing() -> [(folder: String, file: ComfyFile?, name: String, error: String?)] {
        var rows: [(String, ComfyFile?, String, String?)] = []
        for folder in [ComfyFile.Kind.transformer, .textEncoder, .vae, .lora].flatMap({ Self.folders[$0] ?? [] }) {
            let directory = root.appendingPathComponent(folder)
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).sorted()
            for name in names where name.hasSuffix(".safetensors") {
                do throws(ReelError) {
                    rows.append((folder, try ComfyFile.describe(directory.appendingPathComponent(name)), name, nil))
                } catch {
                    rows.append((folder, nil, name, error.message))
                }
            }
        }
        return rows
    }

    /// The model `spec` picks: its transformer file(s) read to learn the architecture, and the text encoder and VAE
    /// found and checked against it. Every missing or mismatched file is an error naming it and what was expected.
    public func resolve(_ spec: ComfyModelSpec) throws(ReelError) -> (ModelInfo, ComfyModelSpec) {
        func fail(_ message: String) -> ReelError { ReelError(.modelNotFound, field: "model", message) }
        func describe(_ name: String, kind: ComfyFile.Kind, flag: String) throws(ReelError) -> ComfyFile {
            guard let url = file(name, kind: kind) else {
                let places = (Self.folders[kind] ?? []).map { root.appendingPathComponent($0).path + "/" }
                throw fail("\(flag) \(name): no such file in \(places.joined(separator: " or "))")
            }
            do {
                return try ComfyFile.describe(url)
            } catch {
                throw fail("\(flag) \(url.path): \(error.message)")
            }
        }
        var chosen = spec
        var unets: [(file: ComfyFile, flag: String)] = []
        if let unet = spec.unet {
            guard spec.unetHigh == nil, spec.unetLow == nil else {
                throw fail("give --unet (TI2V-5B) or --unet-high and --unet-low (A14B), not both")
            }
            unets = [(try describe(unet, kind: .transformer, flag: "--unet"), "--unet")]
        } else if spec.unetHigh != nil || spec.unetLow != nil {
            guard let high = spec.unetHigh, let low = spec.unetLow else {
                throw fail("an A14B model needs both experts: give --unet-high and --unet-low")
            }
            unets = [
                (try describe(high, kind: .transformer, flag: "--unet-high"), "--unet-high"),
                (try describe(low, kind: .transformer, flag: "--unet-low"), "--unet-low"),
            ]
        } else {
            // The templates' files, when exactly one model's set is there.
            let found = Architecture.allCases.filter { architecture in
                Self.defaultUnets(architecture).allSatisfy { file($0, kind: .transformer) != nil }
            }
            guard found.count == 1, let architecture = found.first else {
                let names = Architecture.allCases.flatMap(Self.defaultUnets).joined(separator: ", ")
                throw fail(
                    found.isEmpty
                        ? "\(root.path) holds none of the transformer files the ComfyUI templates name (\(names)): "
                            + "choose yours with --unet FILE, or --unet-high FILE --unet-low FILE"
                        : "\(root.path) holds the files of \(found.map(\.rawValue).joined(separator: " and ")): choose "
                            + "with --unet FILE, or --unet-high FILE --unet-low FILE")
            }
            let names = Self.defaultUnets(architecture)
            if names.count == 1 {
                chosen.unet = names[0]
                unets = [(try describe(names[0], kind: .transformer, flag: "--unet"), "--unet")]
            } else {
                chosen.unetHigh = names[0]
                chosen.unetLow = names[1]
                unets = [
                    (try describe(names[0], kind: .transformer, flag: "--unet-high"), "--unet-high"),
                    (try describe(names[1], kind: .transformer, flag: "--unet-low"), "--unet-low"),
                ]
            }
        }
        for (unet, flag) in unets {
            guard unet.kind == .transformer else {
                throw fail("\(flag) \(unet.path) is not a Wan transformer (no patch_embedding and head.modulation)")
            }
            if let problem = unet.problem { throw fail("\(flag) \(unet.path): \(problem)") }
        }
        guard let architecture = unets[0].file.architecture else { throw fail("unreachable: no architecture") }
        let tiny = unets[0].file.tiny
        if unets.count == 1, architecture != .ti2v5B {
            throw fail(
                "--unet \(unets[0].file.path) is a \(architecture.rawValue) expert; that model has two: give "
                    + "--unet-high and --unet-low")
        }
        if unets.count == 2 {
            guard architecture != .ti2v5B else {
                throw fail(
                    "--unet-high \(unets[0].file.path) is a TI2V-5B transformer, which has one expert: give it as "
                        + "--unet")
            }
            guard unets[1].file.architecture == architecture, unets[1].file.tiny == tiny else {
                throw fail(
                    "--unet-low \(unets[1].file.path) is a \(unets[1].file.architecture?.rawValue ?? "different") "
                        + "transformer, not the \(architecture.rawValue) of --unet-high")
            }
        }
        let encoderName =
            spec.textEncoder ?? Self.defaultTextEncoders.first { file($0, kind: .textEncoder) != nil }
            ?? Self.defaultTextEncoders[0]
        let encoder = try describe(encoderName, kind: .textEncoder, flag: "--text-encoder")
        guard encoder.kind == .textEncoder else {
            throw fail("--text-encoder \(encoder.path) is not a UMT5 text encoder")
        }
        if let problem = encoder.problem { throw fail("--text-encoder \(encoder.path): \(problem)") }
        let vaeName = spec.vae ?? Self.defaultVAE(architecture)
        let vae = try describe(vaeName, kind: .vae, flag: "--vae")
        let expected = architecture == .ti2v5B ? "wan2.2" : "wan2.1"
        guard vae.kind == .vae, vae.vaeVersion == expected else {
            throw fail(
                "--vae \(vae.path) is \(vae.vaeVersion.map { "the \($0) VAE" } ?? "not a Wan VAE"); "
                    + "\(architecture.rawValue) needs the \(expected) VAE (\(Self.defaultVAE(architecture)))")
        }
        chosen.textEncoder = encoderName
        chosen.vae = vaeName
        chosen.folder = root.path
        let defaults =
            tiny
            ? GenerationDefaults(architecture.catalog.tinyDefaults) : GenerationDefaults.fullSize(architecture)
        let info = ModelInfo(
            name: chosen.name, architecture: architecture, randomWeights: false, defaults: defaults, tiny: tiny)
        return (info, chosen)
    }
}
