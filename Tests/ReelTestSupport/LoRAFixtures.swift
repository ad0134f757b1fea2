import Foundation

/// LoRA files written by the tests: real safetensors files (an 8-byte header length, the JSON header, then the
/// tensors' bytes), little-endian float32 values drawn from a seeded generator, in the key layouts people have.
public enum LoRAFixtures {
    /// The widths of a transformer a LoRA is made for.
    public struct Shape: Sendable {
        public var dim: Int
        public var ffnDim: Int
        public var blocks: Int

        public init(dim: Int, ffnDim: Int, blocks: Int) {
            self.dim = dim
            self.ffnDim = ffnDim
            self.blocks = blocks
        }

        /// Every tiny model of the catalog (Reel's `tiny:*`).
        public static let tiny = Shape(dim: 32, ffnDim: 64, blocks: 2)
        /// Full-size TI2V-5B and the A14B experts.
        public static let ti2v5B = Shape(dim: 3072, ffnDim: 14336, blocks: 30)
        public static let a14B = Shape(dim: 5120, ffnDim: 13824, blocks: 40)
    }

    public enum Layout: String, CaseIterable, Sendable {
        /// `diffusion_model.blocks.N.self_attn.q.lora_down.weight` / `lora_up` / `alpha` (kijai, ComfyUI).
        case kohya
        /// `diffusion_model.blocks.N.self_attn.q.lora_A.weight` / `lora_B`.
        case comfy
        /// `transformer.blocks.N.attn1.to_q.lora_A.weight` (PEFT on diffusers' names).
        case diffusers
        /// `lora_unet_blocks_N_self_attn_q.lora_down.weight` / `alpha`.
        case musubi
    }

    /// One tensor: its name, shape and values (float32).
    public struct Tensor: Sendable {
        public var name: String
        public var shape: [Int]
        public var values: [Float]

        public init(name: String, shape: [Int], values: [Float]) {
            self.name = name
            self.shape = shape
            self.values = values
        }
    }

    /// The low-rank pairs of every attention and feed-forward layer of the blocks given, in `layout`.
    public static func pairs(
        _ shape: Shape, rank: Int, layout: Layout, blocks: Range<Int>? = nil, seed: UInt64 = 1
    ) -> [Tensor] {
        var random = SeededValues(seed: seed)
        var tensors: [Tensor] = []
        let layers: [(original: String, diffusers: String, out: Int, in: Int)] =
            ["q", "k", "v", "o"].flatMap { x in
                [
                    ("self_attn.\(x)", "attn1.\(x == "o" ? "to_out.0" : "to_" + x)", shape.dim, shape.dim),
                    ("cross_attn.\(x)", "attn2.\(x == "o" ? "to_out.0" : "to_" + x)", shape.dim, shape.dim),
                ]
            } + [("ffn.0", "ffn.net.0.proj", shape.ffnDim, shape.dim), ("ffn.2", "ffn.net.2", shape.dim, shape.ffnDim)]
        for block in blocks ?? 0..<shape.blocks {
            for layer in layers {
                let down = Tensor(name: "", shape: [rank, layer.in], values: random.next(rank * layer.in))
                let up = Tensor(name: "", shape: [layer.out, rank], values: random.next(layer.out * rank))
                let alpha = Tensor(name: "", shape: [], values: [Float(rank)])
                let original = "blocks.\(block).\(layer.original)"
                switch layout {
                case .kohya:
                    tensors += named([
                        "diffusion_model.\(original).lora_down.weight": down,
                        "diffusion_model.\(original).lora_up.weight": up, "diffusion_model.\(original).alpha": alpha,
                    ])
                case .comfy:
                    tensors += named([
                        "diffusion_model.\(original).lora_A.weight": down,
                        "diffusion_model.\(original).lora_B.weight": up,
                    ])
                case .diffusers:
                    let name = "transformer.blocks.\(block).\(layer.diffusers)"
                    tensors += named(["\(name).lora_A.weight": down, "\(name).lora_B.weight": up])
                case .musubi:
                    let name = "lora_unet_" + original.replacingOccurrences(of: ".", with: "_")
                    tensors += named([
                        "\(name).lora_down.weight": down, "\(name).lora_up.weight": up,
                        "\(name).alpha": alpha,
                    ])
                }
            }
        }
        return tensors
    }

    private static func named(_ tensors: [String: Tensor]) -> [Tensor] {
        tensors.sorted { $0.key < $1.key }.map { Tensor(name: $0.key, shape: $0.value.shape, values: $0.value.values) }
    }

    /// A tensor of seeded values of that shape.
    public static func tensor(_ name: String, _ shape: [Int], seed: UInt64 = 2) -> Tensor {
        var random = SeededValues(seed: seed)
        return Tensor(name: name, shape: shape, values: random.next(shape.reduce(1, *)))
    }

    /// The bytes of a safetensors file holding `tensors` as float32.
    public static func safetensors(_ tensors: [Tensor]) -> Data {
        var body = Data()
        for tensor in tensors {
            precondition(tensor.values.count == tensor.shape.reduce(1, *), "\(tensor.name): values do not fit")
            for value in tensor.values {
                withUnsafeBytes(of: value.bitPattern.littleEndian) { body.append(contentsOf: $0) }
            }
        }
        let (header, _) = HeaderOnlyFiles.header(
            tensors.map { HeaderOnlyFiles.Entry($0.name, "F32", $0.shape) }, metadata: ["format": "pt"])
        return header + body
    }

    /// Writes `tensors` to `directory/name.safetensors` and returns its URL.
    @discardableResult
    public static func write(_ tensors: [Tensor], name: String, in directory: URL) throws -> URL {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let url = directory.appendingPathComponent(name + ".safetensors")
        try safetensors(tensors).write(to: url)
        return url
    }
}

/// Deterministic small values (about ±0.01) from a 64-bit linear congruential generator.
struct SeededValues {
    var state: UInt64

    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }

    mutating func next(_ count: Int) -> [Float] {
        (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (Float(state >> 40) / Float(1 << 24) - 0.5) * 0.02
        }
    }
}

/// Safetensors files of any size that take no time or disk to write: the header names the tensors (dtype and
/// shape), and the data is a hole (a sparse file of the right length), which a header reader never reads.
public enum HeaderOnlyFiles {
    public struct Entry: Sendable {
        public var name: String
        public var dtype: String
        public var shape: [Int]

        public init(_ name: String, _ dtype: String, _ shape: [Int]) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
        }
    }

    static let itemBytes = ["F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "U8": 1, "I64": 8]

    /// The start of a safetensors file holding `entries` one after another: the 8-byte length, then the JSON header
    /// padded with spaces to a multiple of 8 (as the safetensors writer does); and how many data bytes follow it.
    public static func header(_ entries: [Entry], metadata: [String: String]? = nil) -> (Data, dataBytes: Int) {
        var header: [String: Any] = [:]
        if let metadata { header["__metadata__"] = metadata }
        var offset = 0
        for entry in entries {
            let bytes = entry.shape.reduce(itemBytes[entry.dtype] ?? 4, *)
            header[entry.name] = [
                "dtype": entry.dtype, "shape": entry.shape, "data_offsets": [offset, offset + bytes],
            ]
            offset += bytes
        }
        var json = try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(UInt8(ascii: " ")) }
        var file = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { file.append(contentsOf: $0) }
        return (file + json, offset)
    }

    @discardableResult
    public static func write(_ entries: [Entry], to url: URL) throws -> URL {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let (file, dataBytes) = header(entries)
        try file.write(to: url)
        let handle = try FileHandle(forWritingTo: url)
        try handle.truncate(atOffset: UInt64(file.count + dataBytes))
        try handle.close()
        return url
    }

    /// A Wan transformer's tensors, in original names: enough for a reader to tell the model (the patch embedding,
    /// the head, each block's query).
    public static func transformer(
        dim: Int, inChannels: Int, blocks: Int, dtype: String = "BF16", fp8: Bool = false, scales: Bool = true,
        marker: Bool = true, prefix: String = ""
    ) -> [Entry] {
        var entries = [
            Entry(prefix + "patch_embedding.weight", dtype, [dim, inChannels, 1, 2, 2]),
            Entry(prefix + "head.modulation", "F32", [1, 2, dim]),
            Entry(prefix + "head.head.weight", dtype, [64, dim]),
        ]
        for block in 0..<blocks {
            let name = prefix + "blocks.\(block).self_attn.q"
            entries.append(Entry(name + ".weight", fp8 ? "F8_E4M3" : dtype, [dim, dim]))
            if fp8 && scales { entries.append(Entry(name + ".scale_weight", "F32", [])) }
            entries.append(Entry(prefix + "blocks.\(block).modulation", "F32", [1, 6, dim]))
        }
        if fp8 && marker { entries.append(Entry(prefix + "scaled_fp8", "F8_E4M3", [2])) }
        return entries
    }

    /// A Wan VAE's tensors: the 2.2 one's decoder is nested, the 2.1 one's flat.
    public static func vae(version: String) -> [Entry] {
        [
            Entry("encoder.conv1.weight", "BF16", [96, 3, 3, 3, 3]),
            Entry(
                version == "wan2.2"
                    ? "decoder.upsamples.0.upsamples.0.residual.0.gamma" : "decoder.upsamples.0.residual.0.gamma",
                "BF16", [384, 1, 1, 1]),
        ]
    }

    public static let umt5 = [
        Entry("shared.weight", "BF16", [256, 32]), Entry("encoder.final_layer_norm.weight", "BF16", [32]),
        Entry("spiece_model", "U8", [16]),
    ]
}
