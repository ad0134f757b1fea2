/// A prompt style as `GET /v1/styles` and `GET /v1/styles/{name}` show it; `label_zh` is always present, `null`
/// when the style has none.
public struct StyleResource: Sendable, Equatable, Codable {
    public var name: String
    /// The style's prompt, with `{prompt}` where the user's prompt goes.
    public var prompt: String
    public var negativePrompt: String
    public var labelZH: String?

    public init(name: String, prompt: String, negativePrompt: String, labelZH: String?) {
        self.name = name
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.labelZH = labelZH
    }

    enum CodingKeys: String, CodingKey {
        case name, prompt
        case negativePrompt = "negative_prompt"
        case labelZH = "label_zh"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(prompt, forKey: .prompt)
        try container.encode(negativePrompt, forKey: .negativePrompt)
        try container.encode(labelZH, forKey: .labelZH)
    }
}
