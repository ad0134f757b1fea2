import Testing

@testable import ReelCore

/// Which models take which images, `size: auto` and `fit`, checked before any work.
@Suite struct ImageValidationTests {
    let ti2v = try! ModelCatalog.resolve("tiny:ti2v-5b")
    let t2v = try! ModelCatalog.resolve("tiny:t2v-a14b")
    let i2v = try! ModelCatalog.resolve("tiny:i2v-a14b")

    func image(_ width: Int, _ height: Int, _ fill: Character = "a") -> ImageReference {
        ImageReference(sha256: String(repeating: fill, count: 64), format: .png, width: width, height: height)
    }

    func resolve(_ model: ModelInfo, _ change: (inout GenerationRequest) -> Void) throws(ReelError) -> GenerationSpec {
        var request = GenerationRequest(prompt: "a lamp turning on a table", seed: 1)
        change(&request)
        return try Validation.resolve(request, model: model)
    }

    @Test func anImageOnATextOnlyModelNamesTheModelsThatTakeOne() throws {
        let error = try #require(throws: ReelError.self) { try resolve(t2v) { $0.image = image(64, 64) } }
        #expect(error.field == "image")
        #expect(error.message.contains("ti2v-5b") && error.message.contains("i2v-a14b"), "\(error)")
        #expect(!error.message.contains("t2v-a14b,"), "t2v-a14b is not among the models that take one")
    }

    @Test func i2vNeedsAnImageAndTI2VMayHaveOne() throws {
        let missing = try #require(throws: ReelError.self) { try resolve(i2v) { _ in } }
        #expect(missing.field == "image" && missing.message.contains("i2v-a14b"))
        let text = try resolve(ti2v) { _ in }
        #expect(text.image == nil && text.fit == nil, "TI2V-5B without an image is text-to-video")
        let picture = try resolve(ti2v) { $0.image = image(64, 64) }
        #expect(picture.image == image(64, 64) && picture.fit == .cover, "cover unless told")
    }

    @Test func aLastImageOnlyWhereTheModelTakesOneAndWithAFirst() throws {
        let onTI2V = try #require(throws: ReelError.self) {
            try resolve(ti2v) {
                $0.image = image(64, 64)
                $0.lastImage = image(64, 64, "b")
            }
        }
        #expect(onTI2V.field == "last_image" && onTI2V.message.contains("i2v-a14b"), "\(onTI2V)")
        let alone = try #require(throws: ReelError.self) {
            try resolve(i2v) { $0.lastImage = image(64, 64, "b") }
        }
        #expect(alone.field == "image", "an i2v job without a first image is refused for that first")
        let both = try resolve(i2v) {
            $0.image = image(64, 64)
            $0.lastImage = image(64, 64, "b")
            $0.fit = .contain
        }
        #expect(both.lastImage?.sha256.first == "b" && both.fit == .contain)
    }

    @Test func sizeAutoFollowsTheImagesShape() throws {
        let presets = VideoPresets.presets(for: .ti2v5B)
        func auto(_ width: Int, _ height: Int) throws -> String {
            try resolve(ti2v) {
                $0.image = image(width, height)
                $0.size = "auto"
            }.size
        }
        #expect(try auto(1920, 1080) == "1280x704", "16:9 is 720p, not the smaller presets of about its shape")
        #expect(try auto(1080, 1920) == "704x1280")
        #expect(try auto(1000, 1000) == "704x704")
        #expect(try auto(1024, 768) == "960x544", "4:3 is as near 540p as square (within 5 %); the larger wins")
        #expect(presets.contains { $0.size == (try? auto(3000, 2000)) })
        let a14b = try resolve(i2v) {
            $0.image = image(832, 480)
            $0.size = "auto"
        }
        #expect(a14b.size == "1280x720", "I2V-A14B's own presets")
        let none = try #require(throws: ReelError.self) { try resolve(ti2v) { $0.size = "auto" } }
        #expect(none.field == "size" && none.message.contains("image"))
    }

    @Test func fitIsOneOfThree() throws {
        #expect(try ImageFit.parse(" Contain ") == .contain)
        let error = try #require(throws: ReelError.self) { try ImageFit.parse("crop") }
        #expect(error.field == "fit" && error.message.contains("cover, contain, stretch"))
        // Without an image a fit has nothing to apply to, and the spec says so by having none.
        #expect(try resolve(ti2v) { $0.fit = .stretch }.fit == nil)
    }

    @Test func imageIDsAreTheirHash() {
        let reference = image(1, 1, "c")
        #expect(ImageReference.sha256(inID: reference.id) == reference.sha256)
        for bad in ["img_", "img_" + String(repeating: "C", count: 64), "job_" + reference.sha256, reference.sha256] {
            #expect(ImageReference.sha256(inID: bad) == nil, "\(bad)")
        }
    }

    @Test func csvColumnsCarryTheImagesByName() throws {
        let row = try SpecFields.row(from: [
            "prompt": "a kite", "image": " photos/kite.png ", "last_image": "end.webp", "fit": "stretch",
        ])
        #expect(row.imageName == "photos/kite.png" && row.lastImageName == "end.webp")
        #expect(row.request.fit == .stretch && row.request.image == nil, "a name is read by whoever runs the row")
        let error = try #require(throws: ReelError.self) { try SpecFields.row(from: ["prompt": "x", "fit": "zoom"]) }
        #expect(error.field == "fit")
    }
}
