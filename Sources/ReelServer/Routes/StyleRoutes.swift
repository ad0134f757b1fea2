import Hummingbird
import ReelCore

/// `GET /v1/styles` and `GET /v1/styles/{name}`: the prompt styles a job's `style` may name, for a web page's
/// style picker or a client that shows the final prompt before submitting.
struct StyleRoutes {
    let styles: StyleLibrary

    /// One style as the API shows it; `label_zh` is always present, `null` when the style has none.
    struct StyleResource: Encodable {
        var name: String
        var prompt: String
        var negativePrompt: String
        var labelZH: String?

        init(_ style: Style) {
            name = style.name
            prompt = style.prompt
            negativePrompt = style.negativePrompt
            labelZH = style.labelZH
        }

        enum CodingKeys: String, CodingKey {
            case name, prompt
            case negativePrompt = "negative_prompt"
            case labelZH = "label_zh"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(name, forKey: .name)
            try container.encode(prompt, forKey: .prompt)
            try container.encode(negativePrompt, forKey: .negativePrompt)
            try container.encode(labelZH, forKey: .labelZH)
        }
    }

    func register(on router: Router<BasicRequestContext>) {
        router.get("/v1/styles") { _, _ in try APIJSON.response(DataList(data: styles.styles.map(StyleResource.init))) }
        router.get("/v1/styles/:name") { _, context in
            let name = try context.parameters.require("name")
            let style: Style
            do throws(ReelError) {
                style = try styles.style(named: name)
            } catch {
                // An unknown name in a path is a missing resource, not a bad value; the message keeps the hint.
                throw ReelError(.notFound, field: "style", error.message)
            }
            return try APIJSON.response(StyleResource(style))
        }
    }
}
