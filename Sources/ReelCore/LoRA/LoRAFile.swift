import Foundation

/// What a LoRA file is, read from its safetensors header alone (names, dtypes and shapes; no tensor data): the key
/// format it was written in, its rank, and the Wan2.2 models its tensors fit.
///
/// Every key is accounted for: a key Reel does not understand, a layer with half a pair, or a shape that fits no
/// model makes the file unusable, with the keys named, so a job is refused at submission rather than half-applied.
/// The worker checks the same rules again on the tensors before applying anything.
public struct LoRAFileInfo: Sendable, Equatable, Codable {
    /// The key layout: `diffusers` (PEFT `lora_A`/`lora_B` on diffusers' module names), `kohya` (the original Wan
    /// names with `lora_down`/`lora_up`/`alpha`, as kijai's and ComfyUI's files have), `comfy` (original names with
    /// `lora_A`/`lora_B`), `musubi` (`lora_unet_blocks_N_…`), or `lightx2v` (original names with full-weight
    /// deltas, `diff`/`diff_b`, beside the pairs).
    public var format: String
    /// The largest rank of its low-rank pairs; 0 for a file of full-weight deltas only.
    public var rank: Int
    /// The transformer width its tensors have.
    public var dim: Int
    /// How many transformer blocks it touches, and the highest block index plus one.
    public var blocks: Int
    public var tensors: Int
    /// The models it fits, as `ModelFit.name`s: `t2v-a14b`, `tiny:i2v-a14b`, …
    public var fits: [String]

    public init(format: String, rank: Int, dim: Int, blocks: Int, tensors: Int, fits: [String]) {
        self.format = format
        self.rank = rank
        self.dim = dim
        self.blocks = blocks
        self.tensors = tensors
        self.fits = fits
    }

    /// The full-size architectures it fits, for messages.
    public var architectures: [String] { fits.filter { !$0.hasPrefix("tiny:") } }
}

/// A model a LoRA can be applied to: an architecture, full size or tiny.
public struct ModelFit: Sendable, Equatable, Hashable {
    public var architecture: Architecture
    public var tiny: Bool

    public init(architecture: Architecture, tiny: Bool) {
        self.architecture = architecture
        self.tiny = tiny
    }

    public init(_ model: ModelInfo) { self.init(architecture: model.architecture, tiny: model.isTiny) }

    public var name: String { tiny ? "tiny:\(architecture.rawValue)" : architecture.rawValue }

    public static let all: [ModelFit] = Architecture.allCases.flatMap {
        [ModelFit(architecture: $0, tiny: false), ModelFit(architecture: $0, tiny: true)]
    }

    var shape: CatalogData.TransformerShape {
        tiny ? architecture.catalog.tinyTransformer : architecture.catalog.transformer
    }
}

public enum LoRAFile {
    /// The largest safetensors header read (JSON text); a header larger than this is refused unread.
    public static let maxHeaderBytes = 100 << 20

    /// One tensor's entry in a safetensors header.
    public struct Tensor: Sendable, Equatable {
        public var name: String
        public var dtype: String
        public var shape: [Int]
    }

    /// Reads the header of a safetensors file: its tensors' names, dtypes and shapes.
    public static func readHeader(at url: URL, field: String = "loras") throws(ReelError) -> [Tensor] {
        let handle: FileHandle
        do { handle = try FileHandle(forReadingFrom: url) } catch {
            throw ReelError(.notFound, field: field, "cannot read \(url.path): \(error.localizedDescription)")
        }
        defer { try? handle.close() }
        let size: UInt64
        let prefix: Data
        do {
            size = try handle.seekToEnd()
            try handle.seek(toOffset: 0)
            prefix = try handle.read(upToCount: 8) ?? Data()
        } catch {
            throw ReelError(.notFound, field: field, "cannot read \(url.path): \(error.localizedDescription)")
        }
        let name = url.lastPathComponent
        guard prefix.count == 8 else { throw .invalid(field, "\(name) is not a safetensors file: it is too short") }
        let length = prefix.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard length >= 2, length <= UInt64(maxHeaderBytes), length <= size - 8 else {
            throw .invalid(
                field, "\(name) is not a safetensors file: its header length \(length) does not fit the file")
        }
        let header: Data
        do { header = try handle.read(upToCount: Int(length)) ?? Data() } catch {
            throw ReelError(.notFound, field: field, "cannot read \(url.path): \(error.localizedDescription)")
        }
        return try parseHeader(header, dataBytes: Int(size - 8 - length), fileName: name, field: field)
    }

    /// The tensors a safetensors header (the JSON after the 8-byte length) describes; each tensor's data must lie
    /// within the `dataBytes` that follow the header and match its dtype and shape.
    public static func parseHeader(
        _ header: Data, dataBytes: Int, fileName: String, field: String = "loras"
    )
        throws(ReelError) -> [Tensor]
    {
        let bad = ReelError.invalid(field, "\(fileName) is not a safetensors file: its header is not valid")
        guard let object = try? JSONSerialization.jsonObject(with: header) as? [String: Any] else { throw bad }
        var tensors: [Tensor] = []
        for (name, value) in object where name != "__metadata__" {
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int],
                offsets.count == 2, shape.allSatisfy({ $0 >= 0 && $0 <= 1 << 32 }), shape.count <= 8
            else { throw bad }
            let itemBytes = [
                "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
                "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1,
            ][dtype]
            guard let itemBytes else {
                throw .invalid(field, "\(fileName): tensor \(name.quotedForMessage()) has the unknown dtype \(dtype)")
            }
            var count = itemBytes
            for side in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: side)
                guard !overflow else { throw bad }
                count = product
            }
            guard offsets[0] >= 0, offsets[1] >= offsets[0], offsets[1] <= dataBytes, offsets[1] - offsets[0] == count
            else {
                throw .invalid(
                    field,
                    "\(fileName): tensor \(name.quotedForMessage()) lies outside the file or has the wrong size")
            }
            tensors.append(Tensor(name: name, dtype: dtype, shape: shape))
        }
        return tensors.sorted { $0.name < $1.name }
    }

    /// What the file is, or why Reel cannot apply it (every key not understood, up to 10 named).
    public static func analyze(_ tensors: [Tensor], fileName: String) throws(ReelError) -> LoRAFileInfo {
        var formats = Set<String>()
        var unknown: [String] = []
        var layers: [String: Layer] = [:]
        var refusals: [String] = []
        for tensor in tensors {
            guard let key = Key(tensor.name) else {
                unknown.append(tensor.name)
                continue
            }
            formats.insert(key.format)
            if let refusal = key.refusal {
                refusals.append("\(tensor.name) (\(refusal))")
                continue
            }
            layers[key.module, default: Layer()].add(key.part, tensor.shape)
        }
        func listed(_ keys: [String]) -> String {
            let shown = keys.prefix(10).map { $0.quotedForMessage(limit: 100) }.joined(separator: ", ")
            return keys.count > 10 ? "\(shown) and \(keys.count - 10) more" : shown
        }
        guard unknown.isEmpty else {
            throw .invalid(
                "loras",
                "\(fileName) has \(unknown.count) key(s) Reel does not understand, so it is not applied at all: "
                    + listed(unknown))
        }
        guard refusals.isEmpty else {
            throw .invalid("loras", "\(fileName) has key(s) Reel cannot apply: " + listed(refusals))
        }
        guard !layers.isEmpty else { throw .invalid("loras", "\(fileName) has no LoRA tensors") }
        let incomplete = layers.filter { !$0.value.isComplete }.keys.sorted()
        guard incomplete.isEmpty else {
            throw .invalid(
                "loras",
                "\(fileName) has layer(s) with a down (A) or up (B) matrix missing, or an alpha without a pair: "
                    + listed(incomplete))
        }
        var rank = 0
        var blockIndices = Set<Int>()
        for (module, layer) in layers {
            rank = max(rank, layer.rank ?? 0)
            if let index = Module.blockIndex(module) { blockIndices.insert(index) }
        }
        let fits = ModelFit.all.filter { fit in
            layers.allSatisfy { module, layer in layer.fits(module: module, shape: fit.shape) }
        }
        let dim = Self.dim(layers) ?? 0
        let format: String
        if formats.contains("musubi") {
            format = "musubi"
        } else if formats.contains("diffusers") {
            format = "diffusers"
        } else if layers.values.contains(where: \.hasFullDelta) {
            format = "lightx2v"
        } else {
            format = formats.contains("kohya") ? "kohya" : "comfy"
        }
        guard !fits.isEmpty else {
            let blocks = (blockIndices.max() ?? -1) + 1
            throw .invalid(
                "loras",
                "\(fileName) fits no Wan2.2 model Reel runs (its tensors are \(dim) wide over \(blocks) block(s); "
                    + "TI2V-5B is 3072 wide with 30 blocks, T2V-A14B and I2V-A14B 5120 with 40)")
        }
        return LoRAFileInfo(
            format: format, rank: rank, dim: dim, blocks: (blockIndices.max() ?? -1) + 1, tensors: tensors.count,
            fits: fits.map(\.name))
    }

    /// The width a file's tensors imply: the input width of a block's self-attention query, else any layer's.
    static func dim(_ layers: [String: Layer]) -> Int? {
        for (module, layer) in layers.sorted(by: { $0.key < $1.key }) where module.hasSuffix(".self_attn.q") {
            if let shape = layer.parts[.down] { return shape.last }
        }
        for (module, layer) in layers.sorted(by: { $0.key < $1.key }) where module.hasSuffix(".modulation") {
            if let shape = layer.parts[.diff] { return shape.last }
        }
        return nil
    }

    /// The parts of one layer's entry.
    enum Part: Hashable { case down, up, alpha, diff, diffBias }

    struct Layer {
        var parts: [Part: [Int]] = [:]

        mutating func add(_ part: Part, _ shape: [Int]) { parts[part] = shape }

        var rank: Int? { parts[.down]?.first }
        var hasFullDelta: Bool { parts[.diff] != nil || (parts[.diffBias] != nil && parts[.down] == nil) }

        /// A pair is whole (both matrices, of one rank) or absent with no alpha; full deltas stand alone.
        var isComplete: Bool {
            switch (parts[.down], parts[.up]) {
            case (nil, nil): return parts[.alpha] == nil && (parts[.diff] != nil || parts[.diffBias] != nil)
            case (let down?, let up?): return down.count == 2 && up.count == 2 && down[0] == up[1]
            default: return false
            }
        }

        func fits(module: String, shape s: CatalogData.TransformerShape) -> Bool {
            if let index = Module.blockIndex(module), index >= s.blocks { return false }
            guard let expected = Module.shape(of: module, in: s) else { return false }
            if let down = parts[.down], let up = parts[.up] {
                guard expected.count == 2, down[1] == expected[1], up[0] == expected[0] else { return false }
            }
            if let alpha = parts[.alpha], alpha.reduce(1, *) != 1 { return false }
            if let diff = parts[.diff] {
                // The modulation tables are stored with or without their leading 1.
                guard diff == expected || (expected.first == 1 && Array(expected.dropFirst()) == diff) else {
                    return false
                }
            }
            if let bias = parts[.diffBias], bias != [expected[0]] { return false }
            return true
        }
    }

    /// The layers of a Wan2.2 transformer, by their original (Wan-Video) names, and their weight shapes.
    enum Module {
        static func blockIndex(_ module: String) -> Int? {
            guard module.hasPrefix("blocks.") else { return nil }
            let rest = module.dropFirst("blocks.".count)
            guard let dot = rest.firstIndex(of: ".") else { return nil }
            return Numerals.wholeNumber(rest[..<dot])
        }

        /// The weight shape of a layer (`[out, in]` for a linear layer), or nil when the model has no such layer.
        static func shape(of module: String, in s: CatalogData.TransformerShape) -> [Int]? {
            if blockIndex(module) != nil {
                let layer = module.split(separator: ".", maxSplits: 2).last.map(String.init) ?? ""
                switch layer {
                case "self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o", "cross_attn.q", "cross_attn.k",
                    "cross_attn.v", "cross_attn.o":
                    return [s.dim, s.dim]
                case "ffn.0": return [s.ffnDim, s.dim]
                case "ffn.2": return [s.dim, s.ffnDim]
                case "modulation": return [1, 6, s.dim]
                case "norm3", "self_attn.norm_q", "self_attn.norm_k", "cross_attn.norm_q", "cross_attn.norm_k":
                    return [s.dim]
                default: return nil
                }
            }
            switch module {
            case "text_embedding.0": return [s.dim, s.textDim]
            case "text_embedding.2", "time_embedding.2": return [s.dim, s.dim]
            case "time_embedding.0": return [s.dim, s.freqDim]
            case "time_projection.1": return [6 * s.dim, s.dim]
            case "head.head": return [4 * s.outChannels, s.dim]
            case "head.modulation": return [1, 2, s.dim]
            case "patch_embedding": return [s.dim, s.inChannels, 1, 2, 2]
            default: return nil
            }
        }

        /// Layers a low-rank pair may target (the others take full deltas only).
        static func isLinear(_ module: String) -> Bool {
            if blockIndex(module) != nil {
                return
                    !(module.hasSuffix(".modulation") || module.hasSuffix(".norm3") || module.hasSuffix("norm_q")
                    || module.hasSuffix("norm_k"))
            }
            return !["head.modulation", "patch_embedding"].contains(module)
        }

        /// Diffusers' module names (WanTransformer3DModel) to the original ones, as diffusers' single-file
        /// converter maps them the other way (`norm2` and `norm3` swap places).
        static let fromDiffusers: [(String, String)] = [
            ("attn1.to_q", "self_attn.q"), ("attn1.to_k", "self_attn.k"), ("attn1.to_v", "self_attn.v"),
            ("attn1.to_out.0", "self_attn.o"), ("attn1.norm_q", "self_attn.norm_q"),
            ("attn1.norm_k", "self_attn.norm_k"), ("attn2.to_q", "cross_attn.q"), ("attn2.to_k", "cross_attn.k"),
            ("attn2.to_v", "cross_attn.v"), ("attn2.to_out.0", "cross_attn.o"), ("attn2.norm_q", "cross_attn.norm_q"),
            ("attn2.norm_k", "cross_attn.norm_k"), ("attn2.add_k_proj", "cross_attn.k_img"),
            ("attn2.add_v_proj", "cross_attn.v_img"), ("ffn.net.0.proj", "ffn.0"), ("ffn.net.2", "ffn.2"),
            ("scale_shift_table", "modulation"), ("norm2", "norm3"),
        ]
        static let topFromDiffusers: [String: String] = [
            "condition_embedder.text_embedder.linear_1": "text_embedding.0",
            "condition_embedder.text_embedder.linear_2": "text_embedding.2",
            "condition_embedder.time_embedder.linear_1": "time_embedding.0",
            "condition_embedder.time_embedder.linear_2": "time_embedding.2",
            "condition_embedder.time_proj": "time_projection.1", "proj_out": "head.head",
            "scale_shift_table": "head.modulation", "patch_embedding": "patch_embedding",
        ]
        /// The original names' last parts, for reading musubi's underscore form (`blocks_3_self_attn_q`).
        static let blockLayers = [
            "self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o", "cross_attn.q", "cross_attn.k",
            "cross_attn.v", "cross_attn.o", "cross_attn.k_img", "cross_attn.v_img", "ffn.0", "ffn.2", "modulation",
            "norm3", "self_attn.norm_q", "self_attn.norm_k", "cross_attn.norm_q", "cross_attn.norm_k",
        ]
        static let topLayers = [
            "text_embedding.0", "text_embedding.2", "time_embedding.0", "time_embedding.2", "time_projection.1",
            "head.head", "head.modulation", "patch_embedding",
        ]
    }

    /// One tensor name, read: its layer by original name, which part of the entry it is, and the layout it was
    /// written in.
    struct Key {
        var module: String
        var part: Part
        var format: String
        /// Why a recognised key cannot be applied (an image-attention layer of Wan2.1, DoRA's magnitude, a full
        /// weight for a large layer), or nil.
        var refusal: String?

        init?(_ name: String) {
            let suffixes: [(String, Part, String?)] = [
                (".lora_down.weight", .down, "kohya"), (".lora_up.weight", .up, "kohya"),
                (".lora_A.weight", .down, nil), (".lora_B.weight", .up, nil), (".lora_B.bias", .diffBias, nil),
                (".alpha", .alpha, "kohya"), (".diff_b", .diffBias, nil), (".diff", .diff, nil),
                (".dora_scale", .diff, nil),
            ]
            guard let (suffix, part, suffixFormat) = suffixes.first(where: { name.hasSuffix($0.0) }) else {
                return nil
            }
            var stem = String(name.dropLast(suffix.count))
            var format = suffixFormat ?? "comfy"
            var module: String?
            if stem.hasPrefix("lora_unet_") {
                format = "musubi"
                module = Self.musubi(String(stem.dropFirst("lora_unet_".count)))
            } else {
                for prefix in ["model.diffusion_model.", "diffusion_model.", "transformer.", "model."]
                where stem.hasPrefix(prefix) {
                    stem = String(stem.dropFirst(prefix.count))
                    break
                }
                if let original = Self.original(stem) {
                    module = original
                } else if let converted = Self.diffusers(stem) {
                    module = converted
                    format = "diffusers"
                }
            }
            guard let module else { return nil }
            self.module = module
            self.part = part
            self.format = format
            if suffix == ".dora_scale" {
                refusal = "DoRA magnitudes are not supported"
            } else if module.hasSuffix("k_img") || module.hasSuffix("v_img") {
                refusal = "a Wan2.1 image-attention layer; Wan2.2 has none"
            } else if part == .diff, Module.isLinear(module), module != "head.head" {
                refusal = "a full-weight delta of a large layer; only its low-rank pair or bias delta is applied"
            } else if part != .diff, part != .diffBias, !Module.isLinear(module) {
                refusal = "a low-rank pair on a layer that takes full deltas only"
            } else {
                refusal = nil
            }
        }

        /// An original-format name (`blocks.3.self_attn.q`), when `stem` is one.
        static func original(_ stem: String) -> String? {
            if Module.topLayers.contains(stem) { return stem }
            guard let index = Module.blockIndex(stem) else { return nil }
            let layer = String(stem.dropFirst("blocks.\(index).".count))
            return Module.blockLayers.contains(layer) ? stem : nil
        }

        /// A diffusers-format name (`blocks.3.attn1.to_q`) in its original form.
        static func diffusers(_ stem: String) -> String? {
            if let top = Module.topFromDiffusers[stem] { return top }
            guard let index = Module.blockIndex(stem) else { return nil }
            let layer = String(stem.dropFirst("blocks.\(index).".count))
            guard let (_, original) = Module.fromDiffusers.first(where: { $0.0 == layer }) else { return nil }
            return "blocks.\(index).\(original)"
        }

        /// A musubi name (`blocks_3_self_attn_q`, `head_head`) in its original form.
        static func musubi(_ stem: String) -> String? {
            for layer in Module.topLayers where layer.replacingOccurrences(of: ".", with: "_") == stem {
                return layer
            }
            guard stem.hasPrefix("blocks_") else { return nil }
            let rest = stem.dropFirst("blocks_".count)
            guard let underscore = rest.firstIndex(of: "_"), let index = Numerals.wholeNumber(rest[..<underscore])
            else { return nil }
            let tail = String(rest[rest.index(after: underscore)...])
            for layer in Module.blockLayers where layer.replacingOccurrences(of: ".", with: "_") == tail {
                return "blocks.\(index).\(layer)"
            }
            return nil
        }
    }
}
