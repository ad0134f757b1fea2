/// The files a ComfyUI client may name in the loaders, as this server offers them (`/object_info`'s combo lists
/// and `/models/{folder}`).
public struct ComfyFiles: Sendable, Equatable {
    public var diffusionModels: [String]
    public var textEncoders: [String]
    public var vae: [String]
    public var loras: [String]
    /// The pictures uploaded to `/upload/image` (ComfyUI's `input` folder).
    public var inputImages: [String]

    public init(
        diffusionModels: [String] = [], textEncoders: [String] = [], vae: [String] = [], loras: [String] = [],
        inputImages: [String] = []
    ) {
        self.diffusionModels = diffusionModels
        self.textEncoders = textEncoders
        self.vae = vae
        self.loras = loras
        self.inputImages = inputImages
    }

    /// The folders of `GET /models`, and their files.
    public var folders: [(name: String, files: [String])] {
        [
            ("diffusion_models", diffusionModels), ("text_encoders", textEncoders), ("vae", vae), ("loras", loras),
        ]
    }

    /// The official Comfy-Org file names of an architecture's weights (Comfy-Org/Wan_2.2_ComfyUI_Repackaged and
    /// Wan_2.1_ComfyUI_repackaged, as the Wan2.2 templates name them), which a server of that architecture runs as
    /// its own model whatever files it loaded.
    public static func officialNames(for architecture: Architecture) -> ComfyFiles {
        let encoder = ["umt5_xxl_fp8_e4m3fn_scaled.safetensors", "umt5_xxl_fp16.safetensors"]
        switch architecture {
        case .ti2v5B:
            return ComfyFiles(
                diffusionModels: ["wan2.2_ti2v_5B_fp16.safetensors"], textEncoders: encoder,
                vae: ["wan2.2_vae.safetensors"])
        case .t2vA14B, .i2vA14B:
            let kind = architecture == .t2vA14B ? "t2v" : "i2v"
            let experts = ["high", "low"].flatMap { noise in
                ["fp8_scaled", "fp16"].map { "wan2.2_\(kind)_\(noise)_noise_14B_\($0).safetensors" }
            }
            return ComfyFiles(
                diffusionModels: experts, textEncoders: encoder, vae: ["wan_2.1_vae.safetensors"])
        }
    }
}

/// The ComfyUI nodes Reel accepts, as `GET /object_info` describes them: the same input names, order, types,
/// defaults and bounds as ComfyUI's own definitions (nodes.py, comfy_extras/nodes_wan.py, nodes_video.py,
/// nodes_hunyuan.py, nodes_model_advanced.py, nodes_primitive.py; ComfySwitchNode and ComfyMathExpression as the
/// 2026 templates use them), with the combo lists cut to what Reel can run.
public enum ComfyNodeCatalog {
    /// ComfyUI's sampler and scheduler names that Reel runs (docs/comfyui.md has the table).
    public static let samplers = ["euler", "uni_pc", "uni_pc_bh2"]
    public static let schedulers = ["simple"]
    /// ComfyUI's MAX_RESOLUTION.
    public static let maxResolution: Int64 = 16384

    struct Input {
        var name: String
        var spec: ComfyValue
        init(_ name: String, _ type: String, _ options: [String: ComfyValue] = [:]) {
            self.name = name
            spec = options.isEmpty ? [.string(type)] : [.string(type), .object(options)]
        }
        init(_ name: String, combo: [String], _ options: [String: ComfyValue] = [:]) {
            self.name = name
            let list = ComfyValue.array(combo.map(ComfyValue.string))
            spec = options.isEmpty ? [list] : [list, .object(options)]
        }
    }

    struct Node {
        var name: String
        var display: String
        var category: String
        var required: [Input]
        var optional: [Input] = []
        var outputs: [String] = []
        var outputNames: [String]? = nil
        var outputNode = false
        var description = ""
        var module = "nodes"

        var value: ComfyValue {
            func section(_ inputs: [Input]) -> ComfyValue {
                .object(Dictionary(inputs.map { ($0.name, $0.spec) }, uniquingKeysWith: { a, _ in a }))
            }
            var input: [String: ComfyValue] = ["required": section(required)]
            var order: [String: ComfyValue] = ["required": .array(required.map { .string($0.name) })]
            if !optional.isEmpty {
                input["optional"] = section(optional)
                order["optional"] = .array(optional.map { .string($0.name) })
            }
            return .object([
                "input": .object(input), "input_order": .object(order),
                "output": .array(outputs.map(ComfyValue.string)),
                "output_is_list": .array(outputs.map { _ in .bool(false) }),
                "output_name": .array((outputNames ?? outputs).map(ComfyValue.string)),
                "name": .string(name), "display_name": .string(display), "description": .string(description),
                "python_module": .string(module), "category": .string(category), "output_node": .bool(outputNode),
                "deprecated": false, "experimental": false,
            ])
        }
    }

    static func int(_ d: Int64, _ lo: Int64, _ hi: Int64, step: Int64? = nil) -> [String: ComfyValue] {
        var o: [String: ComfyValue] = ["default": .integer(d), "min": .integer(lo), "max": .integer(hi)]
        if let step { o["step"] = .integer(step) }
        return o
    }

    static func nodes(files: ComfyFiles) -> [Node] {
        let seed: [String: ComfyValue] = [
            "default": 0, "min": 0, "max": .unsigned(UInt64.max), "control_after_generate": true,
        ]
        let steps = int(20, 1, 10000)
        let cfg: [String: ComfyValue] = ["default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01]
        let size = { (w: Int64, h: Int64, l: Int64, lo: Int64, step: Int64) -> [Input] in
            [
                Input("width", "INT", int(w, lo, maxResolution, step: step)),
                Input("height", "INT", int(h, lo, maxResolution, step: step)),
                Input("length", "INT", int(l, 1, maxResolution, step: 4)),
                Input("batch_size", "INT", int(1, 1, 4096)),
            ]
        }
        let conditioningOutputs = (["CONDITIONING", "CONDITIONING", "LATENT"], ["positive", "negative", "latent"])
        let maxInt = Int64.max
        return [
            Node(
                name: "UNETLoader", display: "Load Diffusion Model", category: "advanced/loaders",
                required: [
                    Input("unet_name", combo: files.diffusionModels),
                    Input("weight_dtype", combo: ["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]),
                ], outputs: ["MODEL"]),
            Node(
                name: "CLIPLoader", display: "Load CLIP", category: "advanced/loaders",
                required: [Input("clip_name", combo: files.textEncoders), Input("type", combo: ["wan"])],
                optional: [Input("device", combo: ["default", "cpu"], ["advanced": true])], outputs: ["CLIP"]),
            Node(
                name: "VAELoader", display: "Load VAE", category: "loaders",
                required: [Input("vae_name", combo: files.vae)], outputs: ["VAE"]),
            Node(
                name: "LoraLoaderModelOnly", display: "LoraLoaderModelOnly", category: "loaders",
                required: [
                    Input("model", "MODEL"), Input("lora_name", combo: files.loras),
                    Input("strength_model", "FLOAT", ["default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01]),
                ], outputs: ["MODEL"]),
            Node(
                name: "ModelSamplingSD3", display: "ModelSamplingSD3", category: "advanced/model",
                required: [
                    Input("model", "MODEL"),
                    Input("shift", "FLOAT", ["default": 3.0, "min": 0.0, "max": 100.0, "step": 0.01]),
                ], outputs: ["MODEL"], module: "comfy_extras.nodes_model_advanced"),
            Node(
                name: "CLIPTextEncode", display: "CLIP Text Encode (Prompt)", category: "conditioning",
                required: [
                    Input("text", "STRING", ["multiline": true, "dynamicPrompts": true]), Input("clip", "CLIP"),
                ], outputs: ["CONDITIONING"]),
            Node(
                name: "KSampler", display: "KSampler", category: "sampling",
                required: [
                    Input("model", "MODEL"), Input("seed", "INT", seed), Input("steps", "INT", steps),
                    Input("cfg", "FLOAT", cfg), Input("sampler_name", combo: samplers),
                    Input("scheduler", combo: schedulers), Input("positive", "CONDITIONING"),
                    Input("negative", "CONDITIONING"), Input("latent_image", "LATENT"),
                    Input("denoise", "FLOAT", ["default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01]),
                ], outputs: ["LATENT"]),
            Node(
                name: "KSamplerAdvanced", display: "KSampler (Advanced)", category: "sampling",
                required: [
                    Input("model", "MODEL"), Input("add_noise", combo: ["enable", "disable"]),
                    Input("noise_seed", "INT", seed), Input("steps", "INT", steps), Input("cfg", "FLOAT", cfg),
                    Input("sampler_name", combo: samplers), Input("scheduler", combo: schedulers),
                    Input("positive", "CONDITIONING"), Input("negative", "CONDITIONING"),
                    Input("latent_image", "LATENT"), Input("start_at_step", "INT", int(0, 0, 10000)),
                    Input("end_at_step", "INT", int(10000, 0, 10000)),
                    Input("return_with_leftover_noise", combo: ["disable", "enable"]),
                ], outputs: ["LATENT"]),
            Node(
                name: "EmptyHunyuanLatentVideo", display: "EmptyHunyuanLatentVideo", category: "latent/video",
                required: size(848, 480, 25, 16, 16), outputs: ["LATENT"], module: "comfy_extras.nodes_hunyuan"),
            Node(
                name: "Wan22ImageToVideoLatent", display: "Wan22ImageToVideoLatent", category: "conditioning/inpaint",
                required: [Input("vae", "VAE")] + size(1280, 704, 49, 32, 32),
                optional: [Input("start_image", "IMAGE")], outputs: ["LATENT"], module: "comfy_extras.nodes_wan"),
            Node(
                name: "WanImageToVideo", display: "WanImageToVideo", category: "conditioning/video_models",
                required: [Input("positive", "CONDITIONING"), Input("negative", "CONDITIONING"), Input("vae", "VAE")]
                    + size(832, 480, 81, 16, 16),
                optional: [Input("clip_vision_output", "CLIP_VISION_OUTPUT"), Input("start_image", "IMAGE")],
                outputs: conditioningOutputs.0, outputNames: conditioningOutputs.1, module: "comfy_extras.nodes_wan"),
            Node(
                name: "WanFirstLastFrameToVideo", display: "WanFirstLastFrameToVideo",
                category: "conditioning/video_models",
                required: [Input("positive", "CONDITIONING"), Input("negative", "CONDITIONING"), Input("vae", "VAE")]
                    + size(832, 480, 81, 16, 16),
                optional: [
                    Input("clip_vision_start_image", "CLIP_VISION_OUTPUT"),
                    Input("clip_vision_end_image", "CLIP_VISION_OUTPUT"), Input("start_image", "IMAGE"),
                    Input("end_image", "IMAGE"),
                ], outputs: conditioningOutputs.0, outputNames: conditioningOutputs.1,
                module: "comfy_extras.nodes_wan"),
            Node(
                name: "LoadImage", display: "Load Image", category: "image",
                required: [Input("image", combo: files.inputImages, ["image_upload": true])],
                outputs: ["IMAGE", "MASK"]),
            Node(
                name: "VAEDecode", display: "VAE Decode", category: "latent",
                required: [Input("samples", "LATENT"), Input("vae", "VAE")], outputs: ["IMAGE"]),
            Node(
                name: "CreateVideo", display: "Create Video", category: "image/video",
                required: [
                    Input("images", "IMAGE"),
                    Input("fps", "FLOAT", ["default": 30.0, "min": 1.0, "max": 120.0, "step": 1.0]),
                ], optional: [Input("audio", "AUDIO")], outputs: ["VIDEO"], description: "Create a video from images.",
                module: "comfy_extras.nodes_video"),
            Node(
                name: "SaveVideo", display: "Save Video", category: "image/video",
                required: [
                    Input("video", "VIDEO"), Input("filename_prefix", "STRING", ["default": "video/ComfyUI"]),
                    Input("format", combo: ["auto", "mp4"], ["default": "auto"]),
                    Input("codec", combo: ["auto", "h264"], ["default": "auto"]),
                ], outputNode: true, description: "Saves the input images to your ComfyUI output directory.",
                module: "comfy_extras.nodes_video"),
            Node(
                name: "PrimitiveInt", display: "Int", category: "utils/primitive",
                required: [
                    Input(
                        "value", "INT",
                        ["min": .integer(-maxInt), "max": .integer(maxInt), "control_after_generate": true])
                ], outputs: ["INT"], module: "comfy_extras.nodes_primitive"),
            Node(
                name: "PrimitiveFloat", display: "Float", category: "utils/primitive",
                required: [Input("value", "FLOAT", ["min": .number(-9.2e18), "max": .number(9.2e18)])],
                outputs: ["FLOAT"], module: "comfy_extras.nodes_primitive"),
            Node(
                name: "PrimitiveBoolean", display: "Boolean", category: "utils/primitive",
                required: [Input("value", "BOOLEAN")], outputs: ["BOOLEAN"], module: "comfy_extras.nodes_primitive"),
            Node(
                name: "PrimitiveString", display: "String", category: "utils/primitive",
                required: [Input("value", "STRING")], outputs: ["STRING"], module: "comfy_extras.nodes_primitive"),
            Node(
                name: "ComfySwitchNode", display: "Switch", category: "logic",
                required: [
                    Input("on_false", "*", ["lazy": true]), Input("on_true", "*", ["lazy": true]),
                    Input("switch", "BOOLEAN"),
                ], outputs: ["*"], outputNames: ["output"], module: "comfy_extras.nodes_logic"),
            Node(
                name: "ComfyMathExpression", display: "Math Expression", category: "utils",
                required: [Input("expression", "STRING", ["default": "a + b"])],
                optional: [
                    Input("values.a", "FLOAT,INT"), Input("values.b", "FLOAT,INT"), Input("values.c", "FLOAT,INT"),
                ],
                outputs: ["FLOAT", "INT"], module: "comfy_extras.nodes_math"),
        ]
    }

    /// `GET /object_info`: every node Reel accepts, by class name.
    public static func objectInfo(files: ComfyFiles) -> [String: ComfyValue] {
        Dictionary(nodes(files: files).map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
    }

    /// The class names Reel accepts.
    public static let classNames: Set<String> = Set(nodes(files: ComfyFiles()).map(\.name))
}
