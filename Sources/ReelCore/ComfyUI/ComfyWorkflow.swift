import Foundation

/// One validation error in ComfyUI's shape (`execution.py`): a type such as `value_not_in_list`, a message, details
/// and `extra_info` (`input_name`, `input_config`, `received_value` for an input's error).
public struct ComfyError: Error, Sendable, Equatable {
    public var type: String
    public var message: String
    public var details: String
    public var extraInfo: [String: ComfyValue]

    public init(_ type: String, _ message: String, details: String = "", extraInfo: [String: ComfyValue] = [:]) {
        self.type = type
        self.message = message
        self.details = details
        self.extraInfo = extraInfo
    }

    public var value: ComfyValue {
        [
            "type": .string(type), "message": .string(message), "details": .string(details),
            "extra_info": .object(extraInfo),
        ]
    }
}

/// A prompt ComfyUI would refuse, as `POST /prompt` answers it: a top-level error and, per node, its errors, its
/// class and the outputs that depend on it.
public struct ComfyRejection: Error, Sendable, Equatable {
    public struct NodeErrors: Sendable, Equatable {
        public var errors: [ComfyError]
        public var dependentOutputs: [String]
        public var classType: String

        public init(errors: [ComfyError], dependentOutputs: [String], classType: String) {
            self.errors = errors
            self.dependentOutputs = dependentOutputs
            self.classType = classType
        }
    }

    public var error: ComfyError
    public var nodeErrors: [String: NodeErrors]

    public init(_ error: ComfyError, nodeErrors: [String: NodeErrors] = [:]) {
        self.error = error
        self.nodeErrors = nodeErrors
    }

    /// The answer's body.
    public var value: ComfyValue {
        let nodes = nodeErrors.mapValues { node -> ComfyValue in
            [
                "errors": .array(node.errors.map(\.value)),
                "dependent_outputs": .array(node.dependentOutputs.map(ComfyValue.string)),
                "class_type": .string(node.classType),
            ]
        }
        return ["error": error.value, "node_errors": .object(nodes)]
    }

    /// An input's error, as ComfyUI reports a failed validation of an output.
    public static func input(
        _ error: ComfyError, node: String, classType: String, output: String
    ) -> ComfyRejection {
        ComfyRejection(
            ComfyError("prompt_outputs_failed_validation", "Prompt outputs failed validation"),
            nodeErrors: [node: NodeErrors(errors: [error], dependentOutputs: [output], classType: classType)])
    }
}

/// A node of an API-format prompt: `{"class_type", "inputs": {name: value | [node_id, output_index]}, "_meta"}`.
public struct ComfyNode: Sendable, Equatable {
    public enum Input: Sendable, Equatable {
        case link(node: String, output: Int)
        case value(ComfyValue)
    }

    public var classType: String
    public var inputs: [String: Input]
    public var title: String?
}

/// A ComfyUI prompt translated to one Reel job: the request Reel validates as any other, the nodes its values came
/// from (so that Reel's own validation errors name a node and input), and what `/history` and `/ws` report.
public struct ComfyJob: Sendable, Equatable {
    public var request: GenerationRequest
    /// The `LoadImage` files of the start and end frames (names in ComfyUI's input folder).
    public var startImage: String?
    public var endImage: String?
    /// The `SaveVideo` node, its title and its `filename_prefix`.
    public var outputNode: String
    public var outputTitle: String?
    public var filenamePrefix: String
    /// Where each field of `request` came from: Reel's field name → (node id, input name).
    public var fieldNodes: [String: FieldNode]
    /// The sampler nodes (one, or the high- then the low-noise one), the decode node, and every node that ran, in
    /// the order ComfyUI would execute them.
    public var samplerNodes: [String]
    public var executionOrder: [String]
    /// The class of every node that ran, by id.
    public var classes: [String: String]
    /// What ran differently from what the prompt names: a model file the server does not have run as its model,
    /// a sampler run by Reel's own, a seed above 2^63−1.
    public var substitutions: [String]

    public struct FieldNode: Sendable, Equatable {
        public var node: String
        public var input: String

        public init(node: String, input: String) {
            self.node = node
            self.input = input
        }
    }

    /// The node and input a Reel field (`steps`, `loras[1].scale`, …) came from, if any.
    public func origin(ofField field: String) -> FieldNode? {
        if let exact = fieldNodes[field] { return exact }
        var head = field
        while let cut = head.lastIndex(where: { $0 == "." || $0 == "[" }) {
            head = String(head[..<cut])
            if let found = fieldNodes[head] { return found }
        }
        return nil
    }
}

/// ComfyUI's `simple` scheduler over a flow model's 1000 sigmas (comfy/samplers.py `simple_scheduler` with
/// `ModelSamplingDiscreteFlow`): step x of n runs at the unshifted position `(1000 − int(x · 1000/n)) / 1000`. Given
/// as Reel's `denoising_steps` (those positions times 1000), which the engine shifts as ComfyUI does.
public enum ComfySchedule {
    public static func simple(steps: Int) -> [Int] {
        let spacing = 1000.0 / Double(steps)
        return (0..<steps).map { 1000 - Int(Double($0) * spacing) }
    }
}

/// Translates an API-format ComfyUI prompt into one Reel job, or the rejection ComfyUI's shape gives it. Pure: the
/// server's model and files come in as values.
public struct ComfyWorkflow: Sendable {
    public let model: ModelInfo
    public let files: ComfyFiles
    /// The deepest chain of links followed; real workflows are a few tens deep.
    public static let maxDepth = 128
    /// ComfyUI's default shift of the Wan models when no `ModelSamplingSD3` sets one (comfy/supported_models.py).
    public static let defaultShift = 8.0

    public init(model: ModelInfo, files: ComfyFiles) {
        self.model = model
        self.files = files
    }

    /// Parses the `prompt` of a `POST /prompt` body into nodes.
    public static func nodes(of prompt: ComfyValue) throws(ComfyRejection) -> [String: ComfyNode] {
        guard case .object(let object) = prompt else {
            throw ComfyRejection(ComfyError("invalid_prompt", "Cannot execute because the prompt is not an object."))
        }
        var nodes: [String: ComfyNode] = [:]
        for (id, value) in object {
            guard case .object(let node) = value, let classType = node["class_type"]?.string else {
                throw ComfyRejection(
                    ComfyError(
                        "invalid_prompt", "Cannot execute because a node is missing the class_type property.",
                        details: "Node ID '#\(id)'"))
            }
            var inputs: [String: ComfyNode.Input] = [:]
            for (name, input) in node["inputs"]?.object ?? [:] {
                if case .array(let pair) = input, pair.count == 2, let source = pair[0].linkID,
                    let index = pair[1].double, index >= 0, index < 64, index == index.rounded()
                {
                    inputs[name] = .link(node: source, output: Int(index))
                } else {
                    inputs[name] = .value(input)
                }
            }
            nodes[id] = ComfyNode(
                classType: classType, inputs: inputs, title: node["_meta"]?.object?["title"]?.string)
        }
        return nodes
    }

    /// The job a prompt asks for. `targets` are `partial_execution_targets`: only those outputs run.
    public func translate(_ prompt: ComfyValue, targets: [String]? = nil) throws(ComfyRejection) -> ComfyJob {
        let nodes = try Self.nodes(of: prompt)
        for (id, node) in nodes.sorted(by: { $0.key < $1.key })
        where !ComfyNodeCatalog.classNames.contains(node.classType) {
            throw ComfyRejection(
                ComfyError(
                    "invalid_prompt",
                    "Cannot execute because node \(node.classType) does not exist in Reel: it runs "
                        + ComfyNodeCatalog.classNames.sorted().joined(separator: ", "),
                    details: "Node ID '#\(id)'"),
                nodeErrors: [
                    id: .init(
                        errors: [
                            ComfyError(
                                "invalid_prompt", "node class \(node.classType) is not one Reel runs",
                                details: "Node ID '#\(id)'", extraInfo: ["class_type": .string(node.classType)])
                        ], dependentOutputs: [], classType: node.classType)
                ])
        }
        var outputs = nodes.filter { $0.value.classType == "SaveVideo" }.map(\.key).sorted()
        if let targets {
            outputs = outputs.filter { targets.contains($0) }
        }
        guard let output = outputs.first else {
            throw ComfyRejection(ComfyError("prompt_no_outputs", "Prompt has no outputs", details: "no SaveVideo node"))
        }
        guard outputs.count == 1 else {
            throw ComfyRejection(
                ComfyError(
                    "prompt_outputs_failed_validation",
                    "Reel makes one video per prompt; this prompt has \(outputs.count) SaveVideo nodes "
                        + "(\(outputs.joined(separator: ", "))): queue one prompt each, or name one in "
                        + "partial_execution_targets"))
        }
        var evaluator = Evaluator(nodes: nodes, output: output, workflow: self)
        return try evaluator.job()
    }
}

extension ComfyValue {
    /// A link's source node id: a string, or a whole number as some clients send it.
    fileprivate var linkID: String? {
        switch self {
        case .string(let s): s
        case .integer(let i): String(i)
        default: nil
        }
    }
}

// MARK: - Evaluation

/// What a node's output carries, as far as Reel needs it.
private indirect enum Value {
    case int(Int64)
    case unsigned(UInt64)
    case float(Double)
    case bool(Bool)
    case string(String)
    case model(ModelChain)
    case clip
    case vae(String)
    case conditioning(text: String, node: String)
    case latent(Latent)
    case image(Image)
    case mask
    case video(images: Image, fps: Double, node: String)

    var typeName: String {
        switch self {
        case .int, .unsigned: "INT"
        case .float: "FLOAT"
        case .bool: "BOOLEAN"
        case .string: "STRING"
        case .model: "MODEL"
        case .clip: "CLIP"
        case .vae: "VAE"
        case .conditioning: "CONDITIONING"
        case .latent: "LATENT"
        case .image: "IMAGE"
        case .mask: "MASK"
        case .video: "VIDEO"
        }
    }

    var number: Double? {
        switch self {
        case .int(let v): Double(v)
        case .unsigned(let v): Double(v)
        case .float(let v): v
        default: nil
        }
    }
}

private struct ModelChain {
    var unet: String
    var unetNode: String
    var loras: [(name: String, scale: Double, node: String)] = []
    var shift: Double?
    var shiftNode: String?
}

private struct Latent {
    var width: Int64
    var height: Int64
    var length: Int64
    var node: String
    var startImage: (name: String, node: String)?
    var endImage: (name: String, node: String)?
    var stages: [Stage] = []
}

private struct Stage {
    var node: String
    var advanced: Bool
    var model: ModelChain
    var positive: (text: String, node: String)
    var negative: (text: String, node: String)
    var seed: UInt64
    var seedInput: String
    var steps: Int64
    var cfg: Double
    var sampler: String
    var scheduler: String
    var start: Int64
    var end: Int64
    var addNoise: Bool
    var leftover: Bool
}

private enum Image {
    case file(name: String, node: String)
    case decoded(Latent, node: String)
}

private struct Evaluator {
    let nodes: [String: ComfyNode]
    let output: String
    let workflow: ComfyWorkflow
    var memo: [String: [Value]] = [:]
    var active: Set<String> = []
    var order: [String] = []
    var substitutions: [String] = []

    init(nodes: [String: ComfyNode], output: String, workflow: ComfyWorkflow) {
        self.nodes = nodes
        self.output = output
        self.workflow = workflow
    }

    func fail(_ node: String, _ error: ComfyError) -> ComfyRejection {
        ComfyRejection.input(error, node: node, classType: nodes[node]?.classType ?? "", output: output)
    }

    func inputError(
        _ node: String, _ input: String, _ type: String, _ message: String, received: ComfyValue? = nil
    ) -> ComfyRejection {
        var extra: [String: ComfyValue] = ["input_name": .string(input)]
        if let received { extra["received_value"] = received }
        return fail(node, ComfyError(type, message, details: "\(input)", extraInfo: extra))
    }

    // MARK: Inputs

    /// The value of a node's input: its literal, or what the linked node's output carries.
    mutating func input(
        _ node: String, _ name: String, depth: Int, optional: Bool = false
    ) throws(ComfyRejection)
        -> Value?
    {
        guard let input = nodes[node]?.inputs[name] else {
            if optional { return nil }
            throw inputError(node, name, "required_input_missing", "Required input is missing")
        }
        switch input {
        case .link(let source, let index):
            guard nodes[source] != nil else {
                throw inputError(
                    node, name, "bad_linked_input", "Bad linked input, node \(source) does not exist",
                    received: [.string(source), .integer(Int64(index))])
            }
            let values = try evaluate(source, depth: depth + 1)
            guard index < values.count else {
                throw inputError(
                    node, name, "bad_linked_input",
                    "Bad linked input: node \(source) (\(nodes[source]!.classType)) has no output \(index)",
                    received: [.string(source), .integer(Int64(index))])
            }
            return values[index]
        case .value(let value):
            switch value {
            case .integer(let v): return .int(v)
            case .unsigned(let v): return .unsigned(v)
            case .number(let v): return .float(v)
            case .bool(let v): return .bool(v)
            case .string(let v): return .string(v)
            default:
                throw inputError(
                    node, name, "invalid_input_type", "Failed to convert an input value to a \(name) value",
                    received: value)
            }
        }
    }

    mutating func typed(
        _ node: String, _ name: String, depth: Int, _ expected: String
    ) throws(ComfyRejection) -> Value {
        let value = try input(node, name, depth: depth)!
        guard value.typeName == expected || (expected == "FLOAT" && value.typeName == "INT") else {
            let isLink = if case .link = nodes[node]!.inputs[name]! { true } else { false }
            throw inputError(
                node, name, isLink ? "return_type_mismatch" : "invalid_input_type",
                isLink
                    ? "Return type mismatch between linked nodes: \(name), received_type(\(value.typeName)) mismatch input_type(\(expected))"
                    : "Failed to convert an input value to a \(expected) value")
        }
        return value
    }

    mutating func number(
        _ node: String, _ name: String, depth: Int, min: Double, max: Double, integer: Bool
    ) throws(ComfyRejection) -> Double {
        let value = try typed(node, name, depth: depth, integer ? "INT" : "FLOAT")
        guard let number = value.number, number.isFinite else {
            throw inputError(node, name, "invalid_input_type", "Failed to convert an input value to a number")
        }
        if integer && number != number.rounded() {
            throw inputError(node, name, "invalid_input_type", "\(name) must be a whole number, not \(number)")
        }
        if number < min {
            throw inputError(
                node, name, "value_smaller_than_min", "Value \(number) smaller than min of \(min)",
                received: .number(number))
        }
        if number > max {
            throw inputError(
                node, name, "value_bigger_than_max", "Value \(number) bigger than max of \(max)",
                received: .number(number))
        }
        return number
    }

    mutating func int(
        _ node: String, _ name: String, depth: Int, min: Int64, max: Int64
    ) throws(ComfyRejection)
        -> Int64
    {
        Int64(try number(node, name, depth: depth, min: Double(min), max: Double(max), integer: true))
    }

    mutating func text(_ node: String, _ name: String, depth: Int) throws(ComfyRejection) -> String {
        guard case .string(let s) = try typed(node, name, depth: depth, "STRING") else { return "" }
        return s
    }

    mutating func combo(
        _ node: String, _ name: String, depth: Int, _ options: [String]
    ) throws(ComfyRejection)
        -> String
    {
        let value = try text(node, name, depth: depth)
        guard options.contains(value) else {
            throw inputError(
                node, name, "value_not_in_list",
                "Value not in list: \(name): '\(value)' not in \(options.prefix(20))", received: .string(value))
        }
        return value
    }

    // MARK: Nodes

    mutating func evaluate(_ id: String, depth: Int) throws(ComfyRejection) -> [Value] {
        if let done = memo[id] { return done }
        guard depth < ComfyWorkflow.maxDepth else {
            throw fail(
                id,
                ComfyError(
                    "custom_validation_failed",
                    "the prompt's links run deeper than \(ComfyWorkflow.maxDepth) nodes"))
        }
        guard !active.contains(id) else {
            throw fail(id, ComfyError("bad_linked_input", "the prompt's links form a cycle through node \(id)"))
        }
        active.insert(id)
        defer { active.remove(id) }
        let values = try run(id, depth: depth)
        memo[id] = values
        order.append(id)
        return values
    }

    mutating func run(_ id: String, depth: Int) throws(ComfyRejection) -> [Value] {
        let node = nodes[id]!
        let d = depth
        switch node.classType {
        case "PrimitiveInt":
            let v = try typed(id, "value", depth: d, "INT")
            return [v]
        case "PrimitiveFloat":
            return [.float(try number(id, "value", depth: d, min: -9.3e18, max: 9.3e18, integer: false))]
        case "PrimitiveBoolean":
            return [try typed(id, "value", depth: d, "BOOLEAN")]
        case "PrimitiveString":
            return [.string(try text(id, "value", depth: d))]
        case "ComfySwitchNode":
            guard case .bool(let on) = try typed(id, "switch", depth: d, "BOOLEAN") else { return [] }
            return [try input(id, on ? "on_true" : "on_false", depth: d)!]
        case "ComfyMathExpression":
            let expression = try text(id, "expression", depth: d)
            var variables: [String: Double] = [:]
            for name in ["a", "b", "c"] {
                if let value = try input(id, "values.\(name)", depth: d, optional: true) {
                    guard let number = value.number else {
                        throw inputError(
                            id, "values.\(name)", "return_type_mismatch", "values.\(name) must be a number")
                    }
                    variables[name] = number
                }
            }
            let result: Double
            do {
                result = try MathExpression.evaluate(expression, variables: variables)
            } catch {
                throw inputError(
                    id, "expression", "custom_validation_failed", error.message, received: .string(expression))
            }
            guard result.isFinite, abs(result) < 9.2e18 else {
                throw inputError(id, "expression", "custom_validation_failed", "\(expression) gives \(result)")
            }
            return [.float(result), .int(Int64(result.rounded(.towardZero)))]
        case "UNETLoader":
            let name = try text(id, "unet_name", depth: d)
            _ = try combo(id, "weight_dtype", depth: d, ["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"])
            try checkUNet(name, node: id)
            return [.model(ModelChain(unet: name, unetNode: id))]
        case "CLIPLoader":
            let name = try text(id, "clip_name", depth: d)
            let type = try text(id, "type", depth: d)
            guard type == "wan" else {
                throw inputError(
                    id, "type", "value_not_in_list", "Value not in list: type: '\(type)' not in ['wan']",
                    received: .string(type))
            }
            if !workflow.files.textEncoders.contains(name) {
                substitutions.append("text encoder \(name): ran the server's (\(workflow.model.name))")
            }
            return [.clip]
        case "VAELoader":
            let name = try text(id, "vae_name", depth: d)
            if !workflow.files.vae.contains(name) {
                let official = [Architecture.ti2v5B, .t2vA14B].flatMap { ComfyFiles.officialNames(for: $0).vae }
                if official.contains(name) {
                    throw inputError(
                        id, "vae_name", "value_not_in_list",
                        "Value not in list: vae_name: '\(name)' is the VAE of another model; this server runs "
                            + "\(workflow.model.name) with \(workflow.files.vae.first ?? "its own VAE")",
                        received: .string(name))
                }
                substitutions.append("VAE \(name): ran the server's (\(workflow.model.name))")
            }
            return [.vae(name)]
        case "LoraLoaderModelOnly":
            guard case .model(var chain) = try typed(id, "model", depth: d, "MODEL") else { return [] }
            let name = try combo(id, "lora_name", depth: d, workflow.files.loras)
            let scale = try number(id, "strength_model", depth: d, min: -100, max: 100, integer: false)
            chain.loras.append((String(name.dropLast(name.hasSuffix(".safetensors") ? 12 : 0)), scale, id))
            return [.model(chain)]
        case "ModelSamplingSD3":
            guard case .model(var chain) = try typed(id, "model", depth: d, "MODEL") else { return [] }
            chain.shift = try number(id, "shift", depth: d, min: 0, max: 100, integer: false)
            chain.shiftNode = id
            return [.model(chain)]
        case "CLIPTextEncode":
            _ = try typed(id, "clip", depth: d, "CLIP")
            return [.conditioning(text: try text(id, "text", depth: d), node: id)]
        case "EmptyHunyuanLatentVideo":
            return [.latent(try latent(id, depth: d, minSize: 16))]
        case "Wan22ImageToVideoLatent":
            _ = try typed(id, "vae", depth: d, "VAE")
            var latent = try latent(id, depth: d, minSize: 32)
            latent.startImage = try imageFile(id, "start_image", depth: d)
            return [.latent(latent)]
        case "WanImageToVideo", "WanFirstLastFrameToVideo":
            guard case .conditioning(let positive, let pNode) = try typed(id, "positive", depth: d, "CONDITIONING"),
                case .conditioning(let negative, let nNode) = try typed(id, "negative", depth: d, "CONDITIONING")
            else { return [] }
            _ = try typed(id, "vae", depth: d, "VAE")
            var latent = try latent(id, depth: d, minSize: 16)
            for vision in ["clip_vision_output", "clip_vision_start_image", "clip_vision_end_image"]
            where nodes[id]!.inputs[vision] != nil {
                throw inputError(
                    id, vision, "custom_validation_failed",
                    "Wan2.2 takes no CLIP vision input (that is Wan2.1's image encoder); leave \(vision) unconnected")
            }
            latent.startImage = try imageFile(id, "start_image", depth: d)
            if node.classType == "WanFirstLastFrameToVideo" {
                latent.endImage = try imageFile(id, "end_image", depth: d)
            }
            return [
                .conditioning(text: positive, node: pNode), .conditioning(text: negative, node: nNode), .latent(latent),
            ]
        case "LoadImage":
            let name = try combo(id, "image", depth: d, workflow.files.inputImages)
            return [.image(.file(name: name, node: id)), .mask]
        case "KSampler", "KSamplerAdvanced":
            return [.latent(try sample(id, advanced: node.classType == "KSamplerAdvanced", depth: d))]
        case "VAEDecode":
            guard case .latent(let latent) = try typed(id, "samples", depth: d, "LATENT") else { return [] }
            _ = try typed(id, "vae", depth: d, "VAE")
            return [.image(.decoded(latent, node: id))]
        case "CreateVideo":
            guard case .image(let images) = try typed(id, "images", depth: d, "IMAGE") else { return [] }
            let fps = try number(id, "fps", depth: d, min: 1, max: 120, integer: false)
            if nodes[id]!.inputs["audio"] != nil {
                throw inputError(
                    id, "audio", "custom_validation_failed", "Reel makes silent videos; leave audio unconnected")
            }
            return [.video(images: images, fps: fps, node: id)]
        default:
            // SaveVideo is the output, read by `job()`; nothing links from it.
            throw fail(id, ComfyError("bad_linked_input", "\(node.classType) has no outputs to link from"))
        }
    }

    mutating func latent(_ id: String, depth: Int, minSize: Int64) throws(ComfyRejection) -> Latent {
        let width = try int(id, "width", depth: depth, min: minSize, max: ComfyNodeCatalog.maxResolution)
        let height = try int(id, "height", depth: depth, min: minSize, max: ComfyNodeCatalog.maxResolution)
        let length = try int(id, "length", depth: depth, min: 1, max: ComfyNodeCatalog.maxResolution)
        let batch = try int(id, "batch_size", depth: depth, min: 1, max: 4096)
        guard batch == 1 else {
            throw inputError(
                id, "batch_size", "custom_validation_failed",
                "Reel makes one video per job: batch_size must be 1, not \(batch); queue the prompt \(batch) times",
                received: .integer(batch))
        }
        return Latent(width: width, height: height, length: length, node: id)
    }

    mutating func imageFile(
        _ id: String, _ name: String, depth: Int
    ) throws(ComfyRejection)
        -> (name: String, node: String)?
    {
        guard let value = try input(id, name, depth: depth, optional: true) else { return nil }
        guard case .image(.file(let file, let node)) = value else {
            throw inputError(
                id, name, "return_type_mismatch",
                "\(name) must come from a LoadImage node (Reel starts videos from pictures, not from decoded frames)")
        }
        return (file, node)
    }

    mutating func sample(_ id: String, advanced: Bool, depth d: Int) throws(ComfyRejection) -> Latent {
        guard case .model(let model) = try typed(id, "model", depth: d, "MODEL"),
            case .conditioning(let positive, let pNode) = try typed(id, "positive", depth: d, "CONDITIONING"),
            case .conditioning(let negative, let nNode) = try typed(id, "negative", depth: d, "CONDITIONING"),
            case .latent(var latent) = try typed(id, "latent_image", depth: d, "LATENT")
        else { return Latent(width: 0, height: 0, length: 0, node: id) }
        let seedInput = advanced ? "noise_seed" : "seed"
        let seedValue = try typed(id, seedInput, depth: d, "INT")
        let seed: UInt64
        switch seedValue {
        case .int(let v) where v >= 0: seed = UInt64(v)
        case .unsigned(let v): seed = v
        default:
            throw inputError(id, seedInput, "value_smaller_than_min", "Value smaller than min of 0")
        }
        let steps = try int(id, "steps", depth: d, min: 1, max: 10000)
        let cfg = try number(id, "cfg", depth: d, min: 0, max: 100, integer: false)
        let sampler = try combo(id, "sampler_name", depth: d, ComfyNodeCatalog.samplers)
        let scheduler = try combo(id, "scheduler", depth: d, ComfyNodeCatalog.schedulers)
        var stage = Stage(
            node: id, advanced: advanced, model: model, positive: (positive, pNode), negative: (negative, nNode),
            seed: seed, seedInput: seedInput, steps: steps, cfg: cfg, sampler: sampler, scheduler: scheduler,
            start: 0, end: 10000, addNoise: true, leftover: false)
        if advanced {
            stage.addNoise = try combo(id, "add_noise", depth: d, ["enable", "disable"]) == "enable"
            stage.start = try int(id, "start_at_step", depth: d, min: 0, max: 10000)
            stage.end = try int(id, "end_at_step", depth: d, min: 0, max: 10000)
            stage.leftover = try combo(id, "return_with_leftover_noise", depth: d, ["disable", "enable"]) == "enable"
        } else {
            let denoise = try number(id, "denoise", depth: d, min: 0, max: 1, integer: false)
            guard denoise == 1 else {
                throw inputError(
                    id, "denoise", "custom_validation_failed",
                    "Reel denoises from pure noise: denoise must be 1, not \(denoise)", received: .number(denoise))
            }
        }
        latent.stages.append(stage)
        return latent
    }

    func checkUNet(_ name: String, node: String) throws(ComfyRejection) {
        if workflow.files.diffusionModels.contains(name) { return }
        let lower = name.lowercased()
        let architecture: Architecture? =
            lower.contains("ti2v") && lower.contains("5b")
            ? .ti2v5B
            : lower.contains("t2v") && lower.contains("14b")
                ? .t2vA14B : lower.contains("i2v") && lower.contains("14b") ? .i2vA14B : nil
        guard architecture == workflow.model.architecture else {
            throw inputError(
                node, "unet_name", "value_not_in_list",
                "Value not in list: unet_name: '\(name)' "
                    + (architecture.map { "is a \($0.rawValue) model; " } ?? "")
                    + "this server runs \(workflow.model.name) (\(workflow.model.architecture.rawValue)): "
                    + workflow.files.diffusionModels.joined(separator: ", "),
                received: .string(name))
        }
    }

    // MARK: The job

    mutating func job() throws(ComfyRejection) -> ComfyJob {
        let save = nodes[output]!
        guard case .video(let images, let fps, let createNode) = try typed(output, "video", depth: 0, "VIDEO") else {
            throw fail(output, ComfyError("return_type_mismatch", "video must be a VIDEO"))
        }
        let prefix = try text(output, "filename_prefix", depth: 0)
        _ = try combo(output, "format", depth: 0, ["auto", "mp4"])
        _ = try combo(output, "codec", depth: 0, ["auto", "h264"])
        order.append(output)
        guard case .decoded(let latent, let decodeNode) = images else {
            throw inputError(
                createNode, "images", "custom_validation_failed",
                "the video's frames must come from VAEDecode of a sampler's latent")
        }
        guard !latent.stages.isEmpty else {
            throw inputError(decodeNode, "samples", "custom_validation_failed", "the latent was never sampled")
        }
        var fields: [String: ComfyJob.FieldNode] = [:]
        func field(_ name: String, _ node: String, _ input: String) {
            fields[name] = ComfyJob.FieldNode(node: node, input: input)
        }
        let twoExperts = workflow.model.architecture != .ti2v5B
        let stages = latent.stages
        let first = stages[0]
        var switchStep: Int?
        if stages.count == 1 {
            guard first.start == 0, first.end >= first.steps, first.addNoise else {
                throw inputError(
                    first.node, "start_at_step", "custom_validation_failed",
                    "a lone sampler must denoise every step from pure noise: add_noise enable, start_at_step 0, "
                        + "end_at_step at least steps")
            }
            if twoExperts {
                throw inputError(
                    first.node, "model", "custom_validation_failed",
                    "\(workflow.model.architecture.rawValue) runs a high-noise and a low-noise expert: give it two "
                        + "KSamplerAdvanced nodes, the first on the high-noise model (start 0, end k, leftover noise "
                        + "enable) and the second on the low-noise one (start k, add_noise disable), as the Wan2.2 "
                        + "templates do")
            }
        } else {
            let second = stages[1]
            guard stages.count == 2, twoExperts else {
                throw inputError(
                    stages.last!.node, "latent_image", "custom_validation_failed",
                    twoExperts
                        ? "Reel runs at most two chained samplers (the high- and low-noise experts)"
                        : "\(workflow.model.architecture.rawValue) has one transformer: use one sampler")
            }
            let k = first.end
            guard first.advanced, second.advanced, first.start == 0, first.addNoise, first.leftover,
                !second.addNoise, second.start == k, second.end >= second.steps, k > 0, k < first.steps
            else {
                throw inputError(
                    second.node, "start_at_step", "custom_validation_failed",
                    "the two samplers must split one schedule: the first add_noise enable, start_at_step 0, "
                        + "end_at_step k, return_with_leftover_noise enable; the second add_noise disable, "
                        + "start_at_step k, end_at_step at least steps (0 < k < steps)")
            }
            for (input, same) in [
                ("steps", first.steps == second.steps), ("sampler_name", first.sampler == second.sampler),
                ("scheduler", first.scheduler == second.scheduler),
                // The templates write 8 in one node and 8.000000000000002 in the other: equal to a millionth.
                (
                    "shift",
                    abs(
                        (first.model.shift ?? ComfyWorkflow.defaultShift)
                            - (second.model.shift ?? ComfyWorkflow.defaultShift)) < 1e-6
                ),
                ("positive", first.positive.text == second.positive.text),
                ("negative", first.negative.text == second.negative.text),
            ] where !same {
                throw inputError(
                    second.node, input, "custom_validation_failed",
                    "both samplers of the split must run the same \(input); they differ")
            }
            if first.model.unet.lowercased().contains("low_noise")
                || second.model.unet.lowercased().contains("high_noise")
            {
                throw inputError(
                    first.node, "model", "custom_validation_failed",
                    "the first sampler runs the high-noise expert and the second the low-noise one; these models "
                        + "are the other way round (\(first.model.unet), \(second.model.unet))")
            }
            switchStep = Int(k)
            field("guidance_2", second.node, "cfg")
        }
        // The request.
        var request = GenerationRequest()
        request.prompt = first.positive.text
        request.negativePrompt = first.negative.text
        field("prompt", first.positive.node, "text")
        field("negative_prompt", first.negative.node, "text")
        request.size = "\(latent.width)x\(latent.height)"
        field("size", latent.node, "width")
        field("width", latent.node, "width")
        field("height", latent.node, "height")
        request.frames = Int(latent.length)
        field("frames", latent.node, "length")
        request.steps = Int(first.steps)
        field("steps", first.node, "steps")
        request.guidance = first.cfg
        field("guidance", first.node, "cfg")
        if stages.count == 2 { request.guidance2 = stages[1].cfg }
        guard fps == fps.rounded() else {
            throw inputError(
                createNode, "fps", "custom_validation_failed",
                "Reel writes whole frame rates: fps \(fps) is not a whole number", received: .number(fps))
        }
        request.fps = Int(fps)
        field("fps", createNode, "fps")
        let maxSeed = UInt64(Int64.max)
        request.seed = first.seed & maxSeed
        if first.seed > maxSeed {
            substitutions.append("seed \(first.seed): ran as \(first.seed & maxSeed) (Reel's seeds are below 2^63)")
        }
        field("seed", first.node, first.seedInput)
        // LoRAs, by expert.
        var uses: [LoRAUse] = []
        for (index, stage) in stages.enumerated() {
            for lora in stage.model.loras {
                field("loras[\(uses.count)]", lora.node, "lora_name")
                uses.append(
                    LoRAUse(
                        name: lora.name, scale: lora.scale, expert: twoExperts ? (index == 0 ? .high : .low) : .both))
            }
        }
        request.loras = uses
        // The sampler.
        let shift = first.model.shift ?? ComfyWorkflow.defaultShift
        let steps = Int(first.steps)
        switch first.sampler {
        case "euler":
            request.sampler = SamplerSpec(
                kind: SamplerSpec.flowEuler, shift: shift, denoisingSteps: ComfySchedule.simple(steps: steps),
                switchStep: switchStep)
        default:
            request.sampler = SamplerSpec(
                kind: SamplerSpec.flowUniPC, shift: shift, denoisingSteps: [], switchStep: switchStep)
            substitutions.append(
                "sampler \(first.sampler)/\(first.scheduler): ran as Reel's UniPC (diffusers' "
                    + "UniPCMultistepScheduler, bh2, order 2) at shift \(shift); the same solver family, not "
                    + "ComfyUI's arithmetic")
        }
        field("sampler", first.node, "sampler_name")
        if let start = latent.startImage { field("image", start.node, "image") }
        if let end = latent.endImage { field("last_image", end.node, "image") }
        var classes: [String: String] = [:]
        for id in order { classes[id] = nodes[id]?.classType }
        return ComfyJob(
            request: request, startImage: latent.startImage?.name, endImage: latent.endImage?.name,
            outputNode: output, outputTitle: save.title, filenamePrefix: prefix, fieldNodes: fields,
            samplerNodes: stages.map(\.node), executionOrder: order, classes: classes, substitutions: substitutions)
    }
}
