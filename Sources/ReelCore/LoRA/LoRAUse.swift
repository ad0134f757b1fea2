/// Which expert of a two-expert model (T2V-A14B, I2V-A14B) a LoRA is applied to: the high-noise one (the first
/// steps), the low-noise one (the last), or both. A one-expert model (TI2V-5B) takes `both` only.
public enum LoRAExpert: String, Sendable, Codable, CaseIterable, Hashable {
    case high, low, both

    /// Whether a LoRA for this expert is applied to the high-noise (`true`) or low-noise (`false`) transformer.
    public func covers(high: Bool) -> Bool {
        switch self {
        case .both: true
        case .high: high
        case .low: !high
        }
    }
}

/// A LoRA a job asks for, by its name in the server's LoRA library.
public struct LoRAUse: Sendable, Equatable, Hashable {
    public var name: String
    /// The strength: 1 applies the LoRA as trained, 0 not at all; negative values subtract it.
    public var scale: Double
    public var expert: LoRAExpert

    public init(name: String, scale: Double = 1, expert: LoRAExpert = .both) {
        self.name = name
        self.scale = scale
        self.expert = expert
    }

    /// The largest |scale| accepted.
    public static let maxScale = 10.0
    /// The longest name accepted: a library file's stem.
    public static let maxNameLength = 128

    /// Whether `name` can name a library file: ASCII letters, digits, `.`, `_` and `-`, not starting with `.`.
    public static func isValidName(_ name: some StringProtocol) -> Bool {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= maxNameLength, bytes[0] != UInt8(ascii: ".") else { return false }
        return bytes.allSatisfy { byte in
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
    }

    /// Parses the text form used by the CSV `loras` column and the CLI's `--lora`: entries separated by `;`, each
    /// `NAME[:SCALE][@high|low|both]`, as in `detail:0.8;lightx2v_high@high;lightx2v_low@low`. Whitespace around
    /// an entry is ignored; an empty text is no LoRAs. An error names `field` and the entry.
    public static func parseList(_ text: String, field: String = "loras") throws(ReelError) -> [LoRAUse] {
        var uses: [LoRAUse] = []
        for entry in text.split(separator: ";", omittingEmptySubsequences: false) {
            let trimmed = entry.trimmingWhitespace
            if trimmed.isEmpty { continue }
            uses.append(try parse(trimmed, field: field))
            // Each entry is at least one character and a separator: a text cannot hold more than its length.
        }
        return uses
    }

    /// One entry of the text form: `NAME[:SCALE][@EXPERT]`.
    public static func parse(_ entry: String, field: String = "loras") throws(ReelError) -> LoRAUse {
        let shown = entry.quotedForMessage(limit: 80)
        var rest = Substring(entry)
        var expert = LoRAExpert.both
        if let at = rest.lastIndex(of: "@") {
            let word = rest[rest.index(after: at)...].trimmingWhitespace.lowercased()
            guard let value = LoRAExpert(rawValue: word) else {
                throw .invalid(
                    field, "LoRA \(shown): the expert after @ must be high, low or both, not \(word.quotedForMessage())"
                )
            }
            expert = value
            rest = rest[..<at]
        }
        var scale = 1.0
        if let colon = rest.lastIndex(of: ":") {
            let text = rest[rest.index(after: colon)...]
            guard let value = Numerals.decimal(text) else {
                throw .invalid(
                    field,
                    "LoRA \(shown): the scale after : is not a number (such as 0.8); the form is NAME[:SCALE][@high|low]"
                )
            }
            scale = value
            rest = rest[..<colon]
        }
        let name = rest.trimmingWhitespace
        guard isValidName(name) else {
            throw .invalid(
                field,
                "LoRA \(shown): \(name.quotedForMessage(limit: 80)) is not a LoRA name (the file's name without "
                    + ".safetensors: letters, digits, '.', '_' and '-'); the form is NAME[:SCALE][@high|low]")
        }
        guard abs(scale) <= maxScale else {
            throw .invalid(field, "LoRA \(shown): the scale must be a number between -10 and 10, not \(scale)")
        }
        return LoRAUse(name: name, scale: scale, expert: expert)
    }

    /// The scale is finite and at most `maxScale` in size.
    public func checkScale(field: String = "loras") throws(ReelError) {
        guard scale.isFinite, abs(scale) <= Self.maxScale else {
            throw .invalid(field, "LoRA \(name): the scale must be a number between -10 and 10, not \(scale)")
        }
    }

    /// The text form of this use, as `parse` reads it.
    public var text: String {
        var out = name
        if scale != 1 { out += ":\(scale)" }
        if expert != .both { out += "@\(expert.rawValue)" }
        return out
    }
}

/// A LoRA as a job runs it: the library file by name and content, its strength and its expert.
public struct ResolvedLoRA: Sendable, Equatable, Hashable, Codable {
    public var name: String
    /// Lowercase hex SHA-256 of the file's bytes: the worker checks the file against it before applying it.
    public var sha256: String
    public var bytes: Int
    public var scale: Double
    public var expert: LoRAExpert

    public init(name: String, sha256: String, bytes: Int, scale: Double, expert: LoRAExpert) {
        self.name = name
        self.sha256 = sha256
        self.bytes = bytes
        self.scale = scale
        self.expert = expert
    }
}

/// How the denoising steps are taken when not by the model's own scheduler: the step-distilled sampler of the
/// 4-step LoRAs, with its flow shift and the steps on the 1000-step scale (`[1000, 750, 500, 250]`).
public struct SamplerSpec: Sendable, Equatable, Hashable, Codable {
    public var kind: String
    public var shift: Double
    public var denoisingSteps: [Int]
    /// The step at which the low-noise expert takes over (A14B), when the switch is by step (ComfyUI's split of
    /// KSamplerAdvanced) rather than by the model's boundary timestep; nil for the boundary.
    public var switchStep: Int?

    public init(kind: String = SamplerSpec.stepDistill, shift: Double, denoisingSteps: [Int], switchStep: Int? = nil) {
        self.kind = kind
        self.shift = shift
        self.denoisingSteps = denoisingSteps
        self.switchStep = switchStep
    }

    /// LightX2V's step-distilled schedule (Euler at the listed positions, shifted).
    public static let stepDistill = "step_distill"
    /// ComfyUI's `euler` sampler on a flow model: the same arithmetic as `step_distill`, at the positions of
    /// ComfyUI's schedule (`ComfySchedule`).
    public static let flowEuler = "flow_euler"
    /// The model's own UniPC at another shift (ComfyUI's `uni_pc`, `uni_pc_bh2`).
    public static let flowUniPC = "flow_unipc"
    public static let kinds = [stepDistill, flowEuler, flowUniPC]

    enum CodingKeys: String, CodingKey {
        case kind, shift
        case denoisingSteps = "denoising_steps"
        case switchStep = "switch_step"
    }
}
