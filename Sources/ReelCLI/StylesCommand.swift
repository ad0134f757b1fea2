import ArgumentParser
import Foundation
import ReelCore

/// `--styles FILE`: a JSON file of prompt styles (SDXL Prompt Styler format) added to the built-ins and to those of
/// `<data-dir>/styles/*.json`. Shared by every command that applies or lists styles.
struct StyleFileOption: ParsableArguments {
    @Option(
        name: .customLong("styles"),
        help: ArgumentHelp(
            "A JSON file of extra prompt styles: [{\"name\", \"prompt\" with {prompt}, \"negative_prompt\"}, …].",
            valueName: "file"))
    var file: String?

    /// The built-ins, then `<data-dir>/styles/*.json` in file-name order, then `--styles`; later names win.
    func library(dataDirectory: String) throws -> StyleLibrary {
        do {
            return try StyleLibrary.load(dataDirectory: dataDirectory, file: file.map(absolutePath))
        } catch {
            throw ValidationError(error.description)
        }
    }
}

/// `reel styles`: list the prompt styles, or show what one does to a prompt.
struct StylesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "styles", abstract: "List the prompt styles, or preview one applied to a prompt.",
        discussion: """
            Styles come from Reel's built-ins, then every *.json in <data-dir>/styles (in file-name order), then \
            --styles FILE; a style replaces an earlier one of the same name. A style file is a JSON array in the \
            SDXL Prompt Styler format: {"name", "prompt", "negative_prompt"} plus an optional "label_zh". \
            The prompt is put where {prompt} stands, or appended when the template has none.
            """,
        subcommands: [List.self, Preview.self], defaultSubcommand: List.self)

    /// Where styles come from: `--styles` and `--data-dir`.
    struct StyleSources: ParsableArguments {
        @OptionGroup var styleFile: StyleFileOption

        @Option(help: "Where Reel keeps its data; its styles/*.json are loaded (default $REEL_DATA_DIR).")
        var dataDir: String?

        func library() throws -> StyleLibrary {
            let engine = try EngineOptions.parse(dataDir.map { ["--data-dir", $0] } ?? [])
            return try styleFile.library(dataDirectory: engine.resolvedDataDir)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List every style: name, Chinese label and template.")

        @OptionGroup var sources: StyleSources

        @Flag(help: "Print the styles as a JSON style file, which --styles can load again.")
        var json = false

        func run() throws {
            let styles = try sources.library().styles
            if json {
                print(try StylesCommand.json(styles))
                return
            }
            let nameWidth = styles.map { $0.name.count }.max() ?? 0
            let labelWidth = styles.map { displayWidth($0.labelZH ?? "") }.max() ?? 0
            for style in styles {
                let label = style.labelZH ?? ""
                let name = style.name.padding(toLength: nameWidth, withPad: " ", startingAt: 0)
                let padding = String(repeating: " ", count: labelWidth - displayWidth(label))
                print("\(name)  \(label)\(padding)  \(style.prompt)")
            }
        }
    }

    struct Preview: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the final prompt and negative prompt a style makes of a prompt.")

        @Argument(help: "The style's name.") var name: String
        @Option(help: "The prompt, as a job would give it.") var prompt: String
        @Option(help: "A negative prompt of your own; the style's is joined to it.") var negativePrompt: String?
        @OptionGroup var sources: StyleSources
        @Flag(help: "Print {\"prompt\", \"negative_prompt\"} as JSON.") var json = false

        func run() throws {
            let library = try sources.library()
            let style: Style
            do {
                style = try library.style(named: name)
            } catch {
                throw ValidationError(error.description)
            }
            let (styled, negative) = style.apply(prompt: prompt, negativePrompt: negativePrompt ?? "")
            if json {
                print(try StylesCommand.json(["style": style.name, "prompt": styled, "negative_prompt": negative]))
            } else {
                print("style:           \(style.name)\(style.labelZH.map { " (\($0))" } ?? "")")
                print("prompt:          \(styled)")
                print("negative prompt: \(negative)")
            }
        }
    }

    static func json(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}

/// Terminal columns of a text: East Asian wide characters take two.
func displayWidth(_ text: String) -> Int {
    text.reduce(0) { width, character in
        let wide = character.unicodeScalars.contains { scalar in
            (0x1100...0x115F).contains(scalar.value) || (0x2E80...0xA4CF).contains(scalar.value)
                || (0xAC00...0xD7A3).contains(scalar.value) || (0xF900...0xFAFF).contains(scalar.value)
                || (0xFE30...0xFE4F).contains(scalar.value) || (0xFF00...0xFF60).contains(scalar.value)
                || (0xFFE0...0xFFE6).contains(scalar.value) || (0x20000...0x3FFFD).contains(scalar.value)
        }
        return width + (wide ? 2 : 1)
    }
}
