import ReelAPI
import ReelCore

extension StyleResource {
    init(_ style: Style) {
        self.init(
            name: style.name, prompt: style.prompt, negativePrompt: style.negativePrompt, labelZH: style.labelZH)
    }
}
