import Testing

@testable import ReelCore

@Suite struct SpecFieldsTests {
    @Test func typedFieldsParse() throws {
        let request = try SpecFields.request(from: [
            "prompt": "a fox", "size": "256x256", "frames": "17", "steps": " 4 ", "guidance": "5.5", "seed": "42",
            "png_frames": "yes", "negative_prompt": "",
        ])
        #expect(request.size == "256x256" && request.frames == 17 && request.steps == 4 && request.guidance == 5.5)
        #expect(request.seed == 42 && request.pngFrames && request.negativePrompt == nil)
    }

    @Test func errorsNameTheColumn() {
        for (column, value) in [
            ("steps", "four"), ("frames", "1.5"), ("guidance", "high"), ("seed", "-1"),
            ("png_frames", "maybe"), ("seconds", "nan"),
        ] {
            let error = #expect(throws: ReelError.self) {
                try SpecFields.request(from: ["prompt": "x", column: value])
            }
            #expect(error?.field == column)
        }
        let unknown = #expect(throws: ReelError.self) {
            try SpecFields.request(from: ["prompt": "x", "colour": "red"])
        }
        #expect(unknown?.field == "colour")
        #expect(unknown?.message.contains("unknown column 'colour'") == true)
    }

    @Test func slugsAreShortAndSafe() {
        #expect(Slug.make("A red fox, running in snow!") == "a-red-fox-running-in-snow")
        #expect(Slug.make("一只狐狸 in snow") == "一只狐狸-in-snow")
        #expect(Slug.make("../../etc/passwd") == "etc-passwd")
        #expect(Slug.make("!!!") == "video")
        #expect(Slug.make(String(repeating: "a", count: 100)).count == 40)
    }
}
