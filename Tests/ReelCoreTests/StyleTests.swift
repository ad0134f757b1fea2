import Foundation
import Testing

@testable import ReelCore

@Suite struct StyleTests {
    let library = StyleLibrary.builtIn
    let ti2v = try! ModelCatalog.resolve("random:ti2v-5b")

    /// How many times `part` occurs in `text`.
    func occurrences(of part: String, in text: String) -> Int {
        text.components(separatedBy: part).count - 1
    }

    @Test func builtInsAreCompleteVideoTemplates() {
        #expect(library.styles.count >= 24)
        for style in library.styles {
            #expect(style.name.wholeMatch(of: /[a-z0-9]+(-[a-z0-9]+)*/) != nil, "\(style.name) is not kebab-case")
            #expect(occurrences(of: "{prompt}", in: style.prompt) == 1, "\(style.name)")
            #expect(!style.negativePrompt.trimmingCharacters(in: .whitespaces).isEmpty, "\(style.name)")
            let label = style.labelZH ?? ""
            #expect(label.unicodeScalars.contains { (0x4E00...0x9FFF).contains($0.value) }, "\(style.name): \(label)")
            #expect(style.prompt.count + style.negativePrompt.count < 1000, "\(style.name) is long")
        }
        let names = library.styles.map { $0.name.lowercased() }
        #expect(Set(names).count == names.count, "duplicate names in \(names)")
    }

    @Test(arguments: [
        "cinematic", "product-turntable", "ink-wash", "documentary", "anime", "macro", "aerial", "stop-motion",
        "timelapse", "slow-motion", "handheld-vlog", "noir", "watercolor", "claymation", "3d-render", "vintage-film",
        "cyberpunk-neon", "nature-documentary", "food-commercial", "fashion-runway", "e-commerce-lifestyle",
        "classroom-explainer", "pixel-art", "underwater",
    ])
    func builtInIncludes(_ name: String) throws {
        #expect(try library.style(named: name).name == name)
    }

    @Test func productTurntableIsOnWhite() throws {
        let style = try library.style(named: "product-turntable")
        #expect(style.prompt.contains("white background"))
        #expect(style.prompt.contains("rotating"))
    }

    @Test func applyPutsThePromptWherePlaceholderStands() {
        let style = Style(name: "t", prompt: "Before {prompt}, after.", negativePrompt: "flicker")
        #expect(style.apply(prompt: "a fox", negativePrompt: "").0 == "Before a fox, after.")
        // Braces and the placeholder itself in the user's prompt are text, inserted once and not expanded again.
        #expect(
            style.apply(prompt: #"a {red} fox {"a": 1}"#, negativePrompt: "").0
                == #"Before a {red} fox {"a": 1}, after."#)
        let nested = style.apply(prompt: "say {prompt} twice {prompt}", negativePrompt: "").0
        #expect(nested == "Before say {prompt} twice {prompt}, after.")
        #expect(occurrences(of: "say", in: nested) == 1)
        // Backslashes and dollar signs are not template syntax either.
        #expect(style.apply(prompt: #"$1 \0 \n"#, negativePrompt: "").0 == #"Before $1 \0 \n, after."#)
    }

    @Test func applyKeepsChineseText() throws {
        let prompt = "一只红狐狸在雪地里奔跑，镜头缓慢推进"
        let (styled, negative) = try library.style(named: "ink-wash").apply(prompt: prompt, negativePrompt: "模糊")
        #expect(occurrences(of: prompt, in: styled) == 1)
        #expect(!styled.contains("{prompt}"))
        #expect(negative.hasPrefix("模糊, "))
    }

    @Test func aTemplateWithoutPlaceholderGetsThePromptAppended() {
        #expect(
            Style(name: "t", prompt: "oil painting", negativePrompt: "").apply(prompt: "a fox", negativePrompt: "").0
                == "oil painting, a fox")
        #expect(
            Style(name: "t", prompt: "", negativePrompt: "").apply(prompt: "a fox", negativePrompt: "").0 == "a fox")
    }

    @Test func negativePromptsAreJoined() {
        let style = Style(name: "t", prompt: "{prompt}", negativePrompt: "flicker")
        #expect(style.apply(prompt: "x", negativePrompt: "blurry").1 == "blurry, flicker")
        #expect(style.apply(prompt: "x", negativePrompt: "").1 == "flicker")
        #expect(
            Style(name: "t", prompt: "{prompt}", negativePrompt: "").apply(prompt: "x", negativePrompt: "blurry").1
                == "blurry")
    }

    @Test func namesAreFoundWhateverTheirCase() throws {
        #expect(try library.style(named: "Cinematic").name == "cinematic")
        #expect(try library.style(named: "PIXEL-ART").name == "pixel-art")
    }

    @Test func anUnknownStyleListsTheThreeClosestNames() {
        let closest = library.closestNames(to: "cinematc", count: 3)
        #expect(closest.count == 3)
        #expect(closest.first == "cinematic")
        let error = #expect(throws: ReelError.self) { try library.style(named: "cinematc") }
        #expect(error?.field == "style")
        #expect(error?.code == .invalidValue)
        #expect(error?.message.contains("unknown style 'cinematc'") == true)
        #expect(
            error?.message.contains("the closest are \(closest.joined(separator: ", "))") == true,
            "\(error?.message ?? "")")
        #expect(library.closestNames(to: "watercolour", count: 3).first == "watercolor")
        #expect(library.closestNames(to: "drone", count: 1) != [])
    }

    @Test func anEmptyLibraryExplainsItself() {
        let error = #expect(throws: ReelError.self) { try StyleLibrary.empty.style(named: "cinematic") }
        #expect(error?.message.contains("no styles are loaded") == true)
    }

    @Test func mergeReplacesByNameAndAppendsNewOnes() throws {
        var merged = library
        merged.merge([
            Style(name: "CINEMATIC", prompt: "mine {prompt}", negativePrompt: "n"),
            Style(name: "origami", prompt: "origami {prompt}", negativePrompt: ""),
        ])
        #expect(merged.styles.count == library.styles.count + 1)
        #expect(
            merged.styles.firstIndex { $0.name == "CINEMATIC" } == library.styles.firstIndex { $0.name == "cinematic" })
        #expect(try merged.style(named: "cinematic").prompt == "mine {prompt}")
        #expect(merged.styles.last?.name == "origami")
    }

    @Test func validationAppliesTheStyle() throws {
        let cinematic = try library.style(named: "cinematic")
        let spec = try Validation.resolve(
            GenerationRequest(prompt: "  a red fox in the snow ", negativePrompt: "blurry", style: " Cinematic "),
            model: ti2v, randomSeed: { 7 })
        let (styled, negative) = cinematic.apply(prompt: "a red fox in the snow", negativePrompt: "blurry")
        #expect(spec.prompt == styled)
        #expect(spec.prompt.contains("a red fox in the snow") && !spec.prompt.contains("{prompt}"))
        #expect(spec.negativePrompt == negative)
        #expect(spec.negativePrompt == "blurry, " + cinematic.negativePrompt)
        #expect(spec.style == "cinematic")
        #expect(spec.userPrompt == "a red fox in the snow")
    }

    @Test func validationWithoutAStyleLeavesThePromptAlone() throws {
        let spec = try Validation.resolve(
            GenerationRequest(prompt: "a fox", negativePrompt: "blurry"), model: ti2v, randomSeed: { 7 })
        #expect(spec.prompt == "a fox" && spec.negativePrompt == "blurry")
        #expect(spec.style == nil && spec.userPrompt == nil)
        let blank = try Validation.resolve(
            GenerationRequest(prompt: "a fox", style: "  "), model: ti2v, randomSeed: { 7 })
        #expect(blank.style == nil && blank.prompt == "a fox")
    }

    @Test func validationNamesTheStyleFieldForAnUnknownStyle() {
        let error = #expect(throws: ReelError.self) {
            try Validation.resolve(
                GenerationRequest(prompt: "a fox", style: "cinematc"), model: ti2v, randomSeed: { 7 })
        }
        #expect(error?.field == "style")
        #expect(error?.message.contains("cinematic") == true)
    }

    @Test func validationUsesTheLibraryItIsGiven() throws {
        var styles = StyleLibrary.builtIn
        styles.merge([Style(name: "origami", prompt: "paper origami {prompt}, folding", negativePrompt: "ink")])
        let spec = try Validation.resolve(
            GenerationRequest(prompt: "a crane", style: "origami"), model: ti2v, styles: styles, randomSeed: { 7 })
        #expect(spec.prompt == "paper origami a crane, folding" && spec.negativePrompt == "ink")
        #expect(throws: ReelError.self) {
            try Validation.resolve(
                GenerationRequest(prompt: "a crane", style: "origami"), model: ti2v, randomSeed: { 7 })
        }
    }
}
