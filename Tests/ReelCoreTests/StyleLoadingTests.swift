import Foundation
import Testing

@testable import ReelCore

/// A fresh directory under the temporary directory; each test removes its own with `defer { scratch.remove() }`.
struct StyleScratch {
    let path: String

    init() throws {
        path =
            FileManager.default.temporaryDirectory
            .appendingPathComponent("reel-style-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// Writes `text` to `name` (which may contain folders) and returns its path.
    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        let file = URL(fileURLWithPath: path).appendingPathComponent(name)
        try FileManager.default.createDirectory(
            at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: file)
        return file.path
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

@Suite struct StyleLoadingTests {
    /// Two styles as the SDXL Prompt Styler writes them, with keys Reel does not know.
    let sdxl = #"""
        [
          {
            "name": "cinematic",
            "prompt": "my own cinematic take on {prompt}, slow push-in",
            "negative_prompt": "cartoon",
            "label_zh": "我的电影感",
            "category": "film",
            "tags": ["a", "b"]
          },
          {
            "name": "sai-origami",
            "prompt": "origami style {prompt} . paper art, pleated paper, folded",
            "negative_prompt": "noisy, blurry, soft, deformed, ugly",
            "weight": 1.5,
            "enabled": true
          }
        ]
        """#

    @Test func aUserFileInSDXLFormatMergesOverTheBuiltIns() throws {
        let scratch = try StyleScratch()
        defer { scratch.remove() }
        let file = try scratch.write("mine.json", sdxl)
        let library = try StyleLibrary.load(file: file)
        #expect(library.styles.count == StyleLibrary.builtIn.styles.count + 1)
        let cinematic = try library.style(named: "cinematic")
        #expect(cinematic.prompt == "my own cinematic take on {prompt}, slow push-in")
        #expect(cinematic.negativePrompt == "cartoon" && cinematic.labelZH == "我的电影感")
        #expect(library.styles.first?.name == "cinematic", "a replaced style keeps its place")
        let origami = try library.style(named: "sai-origami")
        #expect(origami.labelZH == nil)
        #expect(
            origami.apply(prompt: "a crane", negativePrompt: "").0
                == "origami style a crane . paper art, pleated paper, folded")
        #expect(try library.style(named: "anime") == StyleLibrary.builtIn.style(named: "anime"))
    }

    @Test func negativePromptAndLabelAreOptionalAndATemplateNeedNoPlaceholder() throws {
        let styles = try StyleLibrary.styles(
            json: Data(#"[{"name": " plain ", "prompt": "oil painting, thick brushstrokes", "label_zh": ""}]"#.utf8),
            file: "inline.json")
        #expect(styles == [Style(name: "plain", prompt: "oil painting, thick brushstrokes", negativePrompt: "")])
        #expect(styles[0].apply(prompt: "a fox", negativePrompt: "").0 == "oil painting, thick brushstrokes, a fox")
        #expect(try StyleLibrary.styles(json: Data("[]".utf8), file: "empty.json").isEmpty)
    }

    @Test func aDirectoryLoadsEveryJSONFileInNameOrder() throws {
        let scratch = try StyleScratch()
        defer { scratch.remove() }
        try scratch.write(
            "styles/20-mine.json", #"[{"name": "shared", "prompt": "mine {prompt}", "negative_prompt": ""}]"#)
        try scratch.write(
            "styles/10-team.json",
            #"[{"name": "shared", "prompt": "team {prompt}", "negative_prompt": ""},"#
                + #" {"name": "team-only", "prompt": "{prompt}"}]"#)
        try scratch.write("styles/notes.txt", "not a style file")
        try scratch.write("styles/.draft.json", "[oops")
        let directory = StyleLibrary.directory(inDataDirectory: scratch.path)
        #expect(directory == scratch.path + "/styles")
        let library = try StyleLibrary.loadDirectory(directory)
        #expect(try library.style(named: "shared").prompt == "mine {prompt}")
        #expect(try library.style(named: "team-only").prompt == "{prompt}")
        #expect(library.styles.count == StyleLibrary.builtIn.styles.count + 2)
        #expect(library.styles.suffix(2).map(\.name) == ["shared", "team-only"])
    }

    @Test func aMissingStylesDirectoryAddsNothing() throws {
        let scratch = try StyleScratch()
        defer { scratch.remove() }
        #expect(try StyleLibrary.loadDirectory(scratch.path + "/styles") == .builtIn)
        #expect(try StyleLibrary.load(dataDirectory: scratch.path, file: nil) == .builtIn)
        #expect(try StyleLibrary.load(dataDirectory: nil, file: nil, over: .empty) == .empty)
    }

    @Test func aFileOverridesTheDataDirectory() throws {
        let scratch = try StyleScratch()
        defer { scratch.remove() }
        try scratch.write("styles/a.json", #"[{"name": "anime", "prompt": "dir {prompt}", "negative_prompt": "x"}]"#)
        let file = try scratch.write(
            "extra.json", #"[{"name": "Anime", "prompt": "file {prompt}", "negative_prompt": "y"}]"#)
        let library = try StyleLibrary.load(dataDirectory: scratch.path, file: file)
        #expect(try library.style(named: "anime").prompt == "file {prompt}")
        #expect(library.styles.count == StyleLibrary.builtIn.styles.count)
    }

    @Test func aLoadedStyleWorksInValidation() throws {
        let scratch = try StyleScratch()
        defer { scratch.remove() }
        let library = try StyleLibrary.load(file: try scratch.write("mine.json", sdxl))
        let spec = try Validation.resolve(
            GenerationRequest(prompt: "纸鹤飞过湖面", negativePrompt: "文字", style: "sai-origami"),
            model: try ModelCatalog.resolve("random:ti2v-5b"), styles: library, randomSeed: { 1 })
        #expect(spec.prompt == "origami style 纸鹤飞过湖面 . paper art, pleated paper, folded")
        #expect(spec.negativePrompt == "文字, noisy, blurry, soft, deformed, ugly")
        #expect(spec.style == "sai-origami" && spec.userPrompt == "纸鹤飞过湖面")
    }

    /// A bad file, and what its error must say besides the file's path.
    struct BadFile: Sendable, CustomTestStringConvertible {
        var what: String
        var json: String
        var mentions: [String]
        var testDescription: String { what }
    }

    static let badFiles: [BadFile] = [
        BadFile(
            what: "not JSON", json: "[{\"name\": \"a\",\n  \"prompt\": oops}]", mentions: ["not valid JSON", "line 2"]),
        BadFile(what: "empty", json: "  \n", mentions: ["not valid JSON", "empty"]),
        BadFile(
            what: "an object, not an array", json: #"{"name": "a", "prompt": "{prompt}"}"#,
            mentions: ["JSON array", "not an object"]),
        BadFile(
            what: "an entry not an object", json: #"[{"name": "a", "prompt": "{prompt}"}, "b"]"#,
            mentions: ["entry 2 of 2", "a string"]),
        BadFile(
            what: "an entry without name", json: #"[{"name": "a", "prompt": "x"}, {"prompt": "{prompt}"}]"#,
            mentions: ["entry 2 of 2", #"no "name""#]),
        BadFile(
            what: "a null name", json: #"[{"name": null, "prompt": "{prompt}"}]"#,
            mentions: ["entry 1 of 1", #"no "name""#]),
        BadFile(
            what: "an empty name", json: #"[{"name": "  ", "prompt": "{prompt}"}]"#,
            mentions: ["entry 1 of 1", #"empty "name""#]),
        BadFile(
            what: "an entry without prompt", json: #"[{"name": "glow", "negative_prompt": ""}]"#,
            mentions: [#"entry 1 of 1 ("glow")"#, #"no "prompt""#]),
        BadFile(
            what: "a prompt that is a number", json: #"[{"name": "glow", "prompt": 3}]"#,
            mentions: [#"entry 1 of 1 ("glow")"#, #""prompt" as a number"#]),
        BadFile(
            what: "a negative prompt that is a list",
            json: #"[{"name": "glow", "prompt": "{prompt}", "negative_prompt": ["a"]}]"#,
            mentions: [#""negative_prompt" as an array"#]),
        BadFile(
            what: "a label that is a boolean", json: #"[{"name": "glow", "prompt": "{prompt}", "label_zh": true}]"#,
            mentions: [#""label_zh" as a boolean"#]),
        BadFile(
            what: "a duplicate name",
            json: #"[{"name": "glow", "prompt": "{prompt}"}, {"name": "x", "prompt": "{prompt}"},"#
                + #" {"name": "Glow", "prompt": "{prompt}"}]"#,
            mentions: [#"entry 3 of 3 ("Glow")"#, "same name as entry 1"]),
    ]

    @Test(arguments: badFiles)
    func aBadFileIsNamedWithTheEntryAndField(_ bad: BadFile) throws {
        let scratch = try StyleScratch()
        defer { scratch.remove() }
        let file = try scratch.write("bad.json", bad.json)
        let error = #expect(throws: ReelError.self) { try StyleLibrary.load(file: file) }
        #expect(error?.field == "styles")
        #expect(error?.code == .invalidValue)
        let message = error?.message ?? ""
        #expect(message.contains(file), "\(message)")
        for mention in bad.mentions { #expect(message.contains(mention), "\(message) lacks \(mention)") }
    }

    @Test func aBadFileInTheDirectoryIsNamed() throws {
        let scratch = try StyleScratch()
        defer { scratch.remove() }
        try scratch.write("styles/a.json", #"[{"name": "fine", "prompt": "{prompt}"}]"#)
        let bad = try scratch.write("styles/b.json", #"[{"prompt": "{prompt}"}]"#)
        let error = #expect(throws: ReelError.self) { try StyleLibrary.load(dataDirectory: scratch.path, file: nil) }
        #expect(error?.message.contains(bad) == true && error?.message.contains("entry 1 of 1") == true)
    }

    @Test func aMissingFileIsNamed() throws {
        let scratch = try StyleScratch()
        defer { scratch.remove() }
        let error = #expect(throws: ReelError.self) { try StyleLibrary.load(file: scratch.path + "/nope.json") }
        #expect(error?.field == "styles")
        #expect(error?.message.contains(scratch.path + "/nope.json does not exist") == true, "\(error?.message ?? "")")
        let notDirectory = try scratch.write("styles", "x")
        #expect(throws: ReelError.self) { try StyleLibrary.loadDirectory(notDirectory) }
    }
}
