import Foundation
import Testing

@testable import ReelCore

/// Numbers, sizes and texts as clients write them: one grammar everywhere, checked arithmetic, bounded cost.
@Suite struct ClientInputTests {
    let ti2v = try! ModelCatalog.resolve("random:ti2v-5b")

    @Test(arguments: [
        ("5", 5), (" 5", 5), ("5\n", 5), ("\t42 ", 42), ("0", 0), ("007", 7), ("9223372036854775807", Int.max),
    ])
    func wholeNumbersAreASCIIDigits(_ text: String, _ value: Int) {
        #expect(Numerals.wholeNumber(text) == value)
    }

    @Test(arguments: [
        "+5", "-5", "5 5", "1_000", "1,000", "0x10", "٥", "５", "1e3", "5.0", "", " ", "9223372036854775808",
        "99999999999999999999999",
    ])
    func anythingElseIsNotAWholeNumber(_ text: String) {
        #expect(Numerals.wholeNumber(text) == nil, "\(text)")
    }

    @Test func negativesOnlyWhereAllowed() {
        #expect(Numerals.wholeNumber("-5", allowNegative: true) == -5)
        #expect(Numerals.wholeNumber("--5", allowNegative: true) == nil)
        #expect(Numerals.wholeNumber("-", allowNegative: true) == nil)
    }

    @Test func decimalsAreWrittenAsInJSON() {
        for (text, value) in [("2.5", 2.5), (".5", 0.5), ("5.", 5.0), ("1e1", 10.0), ("-0.25", -0.25), (" 4 ", 4.0)] {
            #expect(Numerals.decimal(text) == value, "\(text)")
        }
        for text in ["nan", "NaN", "inf", "-infinity", "0x1p3", "1e400", "+1", "1e", "e5", ".", "1.2.3", "1 2"] {
            #expect(Numerals.decimal(text) == nil, "\(text)")
        }
    }

    /// The sizes that got past the checks and overflowed the pixel count (issue 16): each is a 400 naming `size`,
    /// never a trap. The CLI and the server share this parser.
    @Test(arguments: [
        "+3037000512x+3037000512", "3037000512\nx3037000512", "3037000512x3037000512", "3037000512 x 3037000512",
        "+64x+64", "64x64\nx64", "1e3x1e3", "٦٤x٦٤", "0x40x64", "64x", "9223372036854775807x2",
        "4294967296x4294967296", " 64 x 64x",
    ])
    func sizesThatOverflowedAreRefused(_ size: String) {
        let error = #expect(throws: ReelError.self) {
            try Validation.resolve(GenerationRequest(prompt: "x", size: size), model: ti2v, randomSeed: { 1 })
        }
        #expect(error?.field == "size", "\(size)")
        #expect((error?.message.utf8.count ?? 0) < 300, "the message quotes the value briefly")
    }

    @Test func sizesStillReadAsBefore() throws {
        for size in ["256x256", "256X256", " 256x256 ", "256 x 256", "0256x256"] {
            let spec = try Validation.resolve(
                GenerationRequest(prompt: "x", size: size), model: ti2v, randomSeed: { 1 })
            #expect(spec.width == 256 && spec.height == 256, "\(size)")
        }
        let tooBig = #expect(throws: ReelError.self) {
            try Validation.resolve(GenerationRequest(prompt: "x", size: "1048576x1048576"), model: ti2v)
        }
        #expect(tooBig?.message.contains("limit of \(GenerationLimits.standard.maxPixelsPerFrame) pixels") == true)
    }

    /// The CLI validates CSV rows without the server's extra checks: a huge duration must be refused, not
    /// converted to an integer frame count that traps.
    @Test(arguments: [1e300, 1e18, 9e15, Double(Int.max), 1e6])
    func hugeDurationsAreRefused(_ seconds: Double) {
        let error = #expect(throws: ReelError.self) {
            try Validation.resolve(GenerationRequest(prompt: "x", seconds: seconds), model: ti2v, randomSeed: { 1 })
        }
        #expect(error?.field == "seconds")
        #expect(error?.message.contains("limit of \(GenerationLimits.standard.maxFrames) frames") == true)
    }

    @Test func csvCellsUseTheSameGrammar() throws {
        for (column, value) in [
            ("frames", "+17"), ("steps", "4.0"), ("priority", "+1"), ("seed", "0x10"),
            ("seconds", "inf"), ("guidance", "0x1p2"), ("fps", "٢٤"),
        ] {
            let error = #expect(throws: ReelError.self) {
                try SpecFields.row(from: ["prompt": "x", column: value])
            }
            #expect(error?.field == column, "\(column)=\(value)")
        }
        #expect(try SpecFields.row(from: ["prompt": "x", "priority": "-5"]).priority == -5)
        #expect(
            try SpecFields.row(from: ["prompt": "x", "seed": "9223372036854775807"]).request.seed == UInt64(Int64.max))
    }

    /// The text encoder's tokenizer applies NFKC first, so the limit counts what that leaves: a ligature that
    /// expands to 18 letters counts 18, and full-width letters count as the letters they become.
    @Test func thePromptLimitCountsWhatTheTokenizerSees() throws {
        let limits = GenerationLimits(maxPromptCharacters: 4000)
        let ligatures = String(repeating: "\u{FDFA}", count: 300)
        #expect(Validation.length(ligatures) == 300 * 18)
        let error = #expect(throws: ReelError.self) {
            try Validation.resolve(GenerationRequest(prompt: ligatures), model: ti2v, limits: limits, randomSeed: { 1 })
        }
        #expect(
            error?.field == "prompt" && error?.message.contains("5400 characters") == true,
            "\(String(describing: error))")
        #expect(Validation.length("\u{FF21}\u{FF22}") == 2)
    }

    /// Combining marks made one "character" of a 300 KB prompt; the limit counts scalars after NFKC.
    @Test func combiningMarksCountTowardsThePromptLimit() throws {
        let limits = GenerationLimits(maxPromptCharacters: 4000)
        let heavy = "a" + String(repeating: "\u{0301}", count: 150_000)
        #expect(heavy.count == 1)
        let error = #expect(throws: ReelError.self) {
            try Validation.resolve(GenerationRequest(prompt: heavy), model: ti2v, limits: limits, randomSeed: { 1 })
        }
        #expect(error?.field == "prompt")
        // Under the scalar limit, a long run of marks is refused for what it is.
        let run = "a" + String(repeating: "\u{0316}\u{0301}", count: 40)
        let runError = #expect(throws: ReelError.self) {
            try Validation.resolve(GenerationRequest(prompt: run), model: ti2v, limits: limits, randomSeed: { 1 })
        }
        #expect(runError?.field == "prompt" && runError?.message.contains("combining marks") == true)
        // Composed or not, "é" counts once; the negative prompt is bounded too.
        let decomposed = String(repeating: "e\u{0301}", count: 4000)
        #expect(throws: Never.self) {
            try Validation.resolve(
                GenerationRequest(prompt: decomposed), model: ti2v, limits: limits, randomSeed: { 1 })
        }
        #expect(Validation.length(decomposed) == 4000)
        let negative = #expect(throws: ReelError.self) {
            try Validation.resolve(
                GenerationRequest(prompt: "x", negativePrompt: heavy), model: ti2v, limits: limits, randomSeed: { 1 })
        }
        #expect(negative?.field == "negative_prompt")
    }

    /// A 900 KB style name held the threads for seconds (an edit distance against every style); now it costs a
    /// scan of its length.
    @Test func aHugeStyleNameIsRefusedAtOnce() {
        let started = ContinuousClock.now
        for name in [
            String(repeating: "x", count: 900_000), String(repeating: "cinematic ", count: 90_000),
            "a" + String(repeating: "\u{0301}", count: 300_000),
        ] {
            let error = #expect(throws: ReelError.self) { try StyleLibrary.builtIn.style(named: name) }
            #expect(error?.field == "style")
            #expect((error?.message.utf8.count ?? 0) < 400)
        }
        #expect(StyleLibrary.builtIn.closestNames(to: String(repeating: "x", count: 100_000), count: 3) == [])
        #expect(ContinuousClock.now - started < .seconds(1), "took \(ContinuousClock.now - started)")
    }

    @Test func runsOfCombiningMarksAreFoundThroughEscapes() {
        let mark = "\u{0301}"
        #expect(CombiningMarks.longestRun(in: "a" + String(repeating: mark, count: 5)) == 5)
        #expect(
            CombiningMarks.longestRun(in: Array(("x" + String(repeating: mark, count: 31)).utf8), encoding: .utf8) == 31
        )
        let escaped = #"{"k\u0061"# + String(repeating: #"\u0301"#, count: 40) + #"": 1}"#
        #expect(CombiningMarks.longestRun(in: Array(escaped.utf8), encoding: .json) == 31)
        #expect(CombiningMarks.longestRun(in: Array(#"{"a": "\\u0301\\u0301"}"#.utf8), encoding: .json) == 0)
        let percent = "name=a" + String(repeating: "%CC%81", count: 40)
        #expect(CombiningMarks.longestRun(in: Array(percent.utf8), encoding: .percentEncoded) == 31)
        // Ordinary accented and CJK text is far from the limit.
        #expect(CombiningMarks.longestRun(in: "Tiếng Việt, 一只狐狸, e\u{0301}\u{0302}") == 2)
    }
}
