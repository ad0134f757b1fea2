import Testing

@testable import ReelCore

@Suite struct ValidationTests {
    let ti2v = try! ModelCatalog.resolve("random:ti2v-5b")
    let a14b = try! ModelCatalog.resolve("random:t2v-a14b")

    func resolve(_ request: GenerationRequest, model: ModelInfo? = nil) throws(ReelError) -> GenerationSpec {
        try Validation.resolve(request, model: model ?? ti2v, randomSeed: { 7 })
    }

    @Test func defaultsComeFromTheModel() throws {
        let spec = try resolve(GenerationRequest(prompt: "a fox"))
        #expect(spec.width == 1280 && spec.height == 704 && spec.frames == 121 && spec.fps == 24)
        #expect(spec.steps == 50 && spec.guidance == 5.0 && spec.seed == 7)
        let a14 = try resolve(GenerationRequest(prompt: "a fox"), model: a14b)
        #expect(a14.size == "1280x720" && a14.frames == 81 && a14.fps == 16 && a14.guidance2 == 3.0)
    }

    @Test func sizeOffTheStrideNamesTheNearestValidSize() {
        let error = #expect(throws: ReelError.self) { try resolve(GenerationRequest(prompt: "x", size: "1280x700")) }
        #expect(error?.field == "size")
        #expect(error?.message.contains("nearest valid size is 1280x704") == true)
        #expect(error?.message.contains("32") == true)
        // 16 is the A14B stride: 1280x720 is fine there, not for TI2V-5B.
        #expect(throws: Never.self) { try resolve(GenerationRequest(prompt: "x", size: "832x480"), model: a14b) }
        let ti2vError = #expect(throws: ReelError.self) {
            try resolve(GenerationRequest(prompt: "x", size: "1280x720"))
        }
        #expect(ti2vError?.message.contains("1280x704") == true)
    }

    @Test(arguments: ["1280", "x704", "axb", "1280x", "-32x64", "0x32"])
    func malformedSizesAreRejected(_ size: String) {
        let error = #expect(throws: ReelError.self) { try resolve(GenerationRequest(prompt: "x", size: size)) }
        #expect(error?.field == "size")
    }

    @Test func framesMustBeFourNPlusOne() {
        let error = #expect(throws: ReelError.self) { try resolve(GenerationRequest(prompt: "x", frames: 120)) }
        #expect(error?.field == "frames")
        #expect(error?.message.contains("nearest valid count is 121") == true)
        #expect(Validation.nearestFrames(2) == 1)
        #expect(Validation.nearestFrames(7) == 9)
    }

    @Test func secondsConvertToFrames() throws {
        #expect(try resolve(GenerationRequest(prompt: "x", seconds: 5)).frames == 121)
        #expect(try resolve(GenerationRequest(prompt: "x", seconds: 5), model: a14b).frames == 81)
        let rounded = try resolve(GenerationRequest(prompt: "x", seconds: 2.1))
        #expect(rounded.frames == 49 && abs(rounded.seconds - 49.0 / 24.0) < 1e-9)
        let both = #expect(throws: ReelError.self) {
            try resolve(GenerationRequest(prompt: "x", frames: 5, seconds: 1))
        }
        #expect(both?.field == "frames")
    }

    @Test func limitsAreEnforced() {
        #expect(throws: ReelError.self) { try resolve(GenerationRequest(prompt: "x", frames: 1_000_001)) }
        #expect(throws: ReelError.self) { try resolve(GenerationRequest(prompt: "x", size: "100000x100000")) }
        let steps = #expect(throws: ReelError.self) { try resolve(GenerationRequest(prompt: "x", steps: 0)) }
        #expect(steps?.field == "steps")
        let guidance = #expect(throws: ReelError.self) { try resolve(GenerationRequest(prompt: "x", guidance: .nan)) }
        #expect(guidance?.field == "guidance")
        let prompt = #expect(throws: ReelError.self) { try resolve(GenerationRequest(prompt: "   ")) }
        #expect(prompt?.field == "prompt")
        let seed = #expect(throws: ReelError.self) { try resolve(GenerationRequest(prompt: "x", seed: UInt64.max)) }
        #expect(seed?.field == "seed")
    }

    @Test func thePromptLimitBoundsWhatTheUserWroteNotTheStyle() throws {
        let limits = GenerationLimits(maxPromptCharacters: 20)
        let atLimit = GenerationRequest(prompt: String(repeating: "a", count: 20), style: "cinematic")
        let spec = try Validation.resolve(atLimit, model: ti2v, limits: limits, randomSeed: { 1 })
        #expect(spec.prompt.count > 20 && spec.userPrompt?.count == 20)
        let over = GenerationRequest(prompt: String(repeating: "a", count: 21), style: "cinematic")
        let error = #expect(throws: ReelError.self) {
            try Validation.resolve(over, model: ti2v, limits: limits, randomSeed: { 1 })
        }
        #expect(error?.field == "prompt" && error?.message.contains("21 characters") == true)
    }

    @Test func chinesePromptsAreKept() throws {
        let spec = try resolve(GenerationRequest(prompt: "  一只红色的狐狸在雪地里奔跑  "))
        #expect(spec.prompt == "一只红色的狐狸在雪地里奔跑")
    }
}
