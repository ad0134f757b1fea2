import Foundation
import ReelTestSupport
import Testing

@testable import ReelCore

/// The LoRA text form, the reading of LoRA files' headers in every layout, and the resolution of a job's LoRAs and
/// recipe against a library and a model.
@Suite struct LoRATests {
    // MARK: - The text form

    @Test func theTextFormReadsNamesScalesAndExperts() throws {
        let uses = try LoRAUse.parseList(" detail:0.8 ; lightx2v_high@high;lightx2v_low@low;neg:-0.5@both; ")
        #expect(
            uses == [
                LoRAUse(name: "detail", scale: 0.8), LoRAUse(name: "lightx2v_high", expert: .high),
                LoRAUse(name: "lightx2v_low", expert: .low), LoRAUse(name: "neg", scale: -0.5),
            ])
        #expect(try LoRAUse.parseList("") == [])
        #expect(uses.map(\.text) == ["detail:0.8", "lightx2v_high@high", "lightx2v_low@low", "neg:-0.5"])
    }

    @Test(arguments: [
        ("a@middle", "high, low or both"), ("a:much", "not a number"), ("a b:1", "not a LoRA name"),
        ("../etc/passwd", "not a LoRA name"), ("a:11", "between -10 and 10"), (":0.5", "not a LoRA name"),
        ("a:nan", "not a number"),
    ])
    func aBadEntryIsAnErrorNamingItAndTheField(_ text: String, _ says: String) {
        #expect {
            try LoRAUse.parseList("ok;\(text)", field: "loras")
        } throws: { error in
            guard let error = error as? ReelError else { return false }
            return error.field == "loras" && error.message.contains(says)
                && error.message.contains(text.quotedForMessage(limit: 80))
        }
    }

    // MARK: - Files

    func info(_ tensors: [LoRAFixtures.Tensor], name: String = "test.safetensors") throws -> LoRAFileInfo {
        let data = LoRAFixtures.safetensors(tensors)
        let length = Int(data.prefix(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) })
        let parsed = try LoRAFile.parseHeader(
            data.subdata(in: 8..<(8 + length)), dataBytes: data.count - 8 - length, fileName: name)
        return try LoRAFile.analyze(parsed, fileName: name)
    }

    func refusal(_ tensors: [LoRAFixtures.Tensor]) -> String? {
        do {
            _ = try info(tensors)
            return nil
        } catch {
            return (error as? ReelError)?.message
        }
    }

    @Test(arguments: LoRAFixtures.Layout.allCases)
    func everyLayoutIsReadAndFitsTheModelsOfItsShape(_ layout: LoRAFixtures.Layout) throws {
        let tiny = try info(LoRAFixtures.pairs(.tiny, rank: 4, layout: layout))
        #expect(tiny.format == layout.rawValue)
        #expect(tiny.rank == 4 && tiny.dim == 32 && tiny.blocks == 2)
        #expect(tiny.fits == ["tiny:ti2v-5b", "tiny:t2v-a14b", "tiny:i2v-a14b"])
        let five = try info(LoRAFixtures.pairs(.ti2v5B, rank: 2, layout: layout, blocks: 29..<30))
        #expect(five.fits == ["ti2v-5b"] && five.dim == 3072 && five.blocks == 30)
        let a14 = try info(LoRAFixtures.pairs(.a14B, rank: 2, layout: layout, blocks: 0..<1))
        #expect(a14.fits == ["t2v-a14b", "i2v-a14b"] && a14.architectures == ["t2v-a14b", "i2v-a14b"])
    }

    @Test func fullDeltasMakeALightx2vFileAndThePatchEmbeddingTellsI2VApart() throws {
        var tensors = LoRAFixtures.pairs(.tiny, rank: 4, layout: .kohya)
        tensors += [
            LoRAFixtures.tensor("diffusion_model.blocks.0.modulation.diff", [1, 6, 32]),
            LoRAFixtures.tensor("diffusion_model.blocks.1.norm3.diff", [32]),
            LoRAFixtures.tensor("diffusion_model.blocks.1.norm3.diff_b", [32]),
            LoRAFixtures.tensor("diffusion_model.blocks.0.self_attn.q.diff_b", [32]),
            LoRAFixtures.tensor("diffusion_model.head.modulation.diff", [1, 2, 32]),
            LoRAFixtures.tensor("diffusion_model.head.head.diff", [64, 32]),
            LoRAFixtures.tensor("diffusion_model.head.head.diff_b", [64]),
        ]
        let info = try info(tensors)
        #expect(info.format == "lightx2v")
        // head.head is 4 × 16 channels out: the A14B tiny models, not TI2V-5B's 48.
        #expect(info.fits == ["tiny:t2v-a14b", "tiny:i2v-a14b"])
        let i2v = try self.info(
            tensors + [LoRAFixtures.tensor("diffusion_model.patch_embedding.diff", [32, 36, 1, 2, 2])])
        #expect(i2v.fits == ["tiny:i2v-a14b"], "36 latent channels in: I2V-A14B only")
    }

    @Test func aKeyReelDoesNotUnderstandRefusesTheWholeFileNamingIt() throws {
        let tensors =
            LoRAFixtures.pairs(.tiny, rank: 4, layout: .kohya) + [
                LoRAFixtures.tensor("diffusion_model.blocks.0.self_attn.gate.lora_down.weight", [4, 32]),
                LoRAFixtures.tensor("text_encoders.clip_l.lora_up.weight", [32, 4]),
            ]
        let message = try #require(refusal(tensors))
        #expect(message.contains("2 key(s) Reel does not understand, so it is not applied at all"))
        #expect(message.contains("'diffusion_model.blocks.0.self_attn.gate.lora_down.weight'"))
        #expect(message.contains("'text_encoders.clip_l.lora_up.weight'"))
    }

    @Test func halfAPairDoRAAndWan21ImageLayersAreRefusedByName() throws {
        var pairs = LoRAFixtures.pairs(.tiny, rank: 4, layout: .kohya)
        pairs.removeAll { $0.name == "diffusion_model.blocks.1.ffn.2.lora_up.weight" }
        #expect(try #require(refusal(pairs)).contains("blocks.1.ffn.2"))
        let dora =
            LoRAFixtures.pairs(.tiny, rank: 4, layout: .comfy) + [
                LoRAFixtures.tensor("diffusion_model.blocks.0.self_attn.q.dora_scale", [32, 1])
            ]
        #expect(try #require(refusal(dora)).contains("DoRA"))
        let wan21 =
            LoRAFixtures.pairs(.tiny, rank: 4, layout: .comfy) + [
                LoRAFixtures.tensor("diffusion_model.blocks.0.cross_attn.k_img.lora_A.weight", [4, 32]),
                LoRAFixtures.tensor("diffusion_model.blocks.0.cross_attn.k_img.lora_B.weight", [32, 4]),
            ]
        #expect(try #require(refusal(wan21)).contains("Wan2.1 image-attention"))
    }

    @Test func aShapeNoModelHasIsRefusedWithTheWidthsItHas() throws {
        let odd = LoRAFixtures.Shape(dim: 48, ffnDim: 96, blocks: 1)
        let message = try #require(refusal(LoRAFixtures.pairs(odd, rank: 2, layout: .kohya)))
        #expect(message.contains("fits no Wan2.2 model") && message.contains("48 wide"))
    }

    @Test func aTruncatedFileIsNotASafetensorsFile() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            let url = try LoRAFixtures.write(
                LoRAFixtures.pairs(.tiny, rank: 4, layout: .kohya), name: "a", in: directory)
            let whole = try Data(contentsOf: url)
            try whole.prefix(whole.count - 10).write(to: url)
            #expect {
                try LoRAFile.readHeader(at: url)
            } throws: { error in
                (error as? ReelError)?.message.contains("lies outside the file or has the wrong size") == true
            }
            try Data([1, 2, 3]).write(to: url)
            #expect(throws: ReelError.self) { try LoRAFile.readHeader(at: url) }
        }
    }

    // MARK: - Resolution

    static let tinyT2V = try! ModelCatalog.resolve("tiny:t2v-a14b")
    static let tinyTI2V = try! ModelCatalog.resolve("tiny:ti2v-5b")

    func entry(_ name: String, fits: [String], sha: Character = "a", dim: Int = 32) -> LoRAEntry {
        LoRAEntry(
            name: name, bytes: 10, sha256: String(repeating: sha, count: 64),
            info: LoRAFileInfo(format: "kohya", rank: 4, dim: dim, blocks: 2, tensors: 3, fits: fits), problem: nil)
    }

    var catalog: LoRACatalog {
        LoRACatalog(entries: [
            entry("detail", fits: ["tiny:t2v-a14b", "tiny:i2v-a14b"], sha: "d"),
            entry("lightning_high", fits: ["tiny:t2v-a14b"], sha: "h"),
            entry("lightning_low", fits: ["tiny:t2v-a14b"], sha: "l"),
            entry("five_style", fits: ["ti2v-5b"], sha: "f", dim: 3072),
            LoRAEntry(
                name: "broken", bytes: 1, sha256: String(repeating: "0", count: 64), info: nil, problem: "bad keys"),
        ])
    }

    func message(_ body: () throws -> Void) -> (field: String?, message: String)? {
        do {
            try body()
            return nil
        } catch {
            let error = error as? ReelError
            return (error?.field, error?.message ?? "")
        }
    }

    @Test func anUnknownNameListsTheClosestNames() throws {
        let error = try #require(
            message { _ = try catalog.resolve([LoRAUse(name: "lightning_hihg")], for: Self.tinyT2V) })
        #expect(error.field == "loras")
        #expect(error.message.contains("unknown LoRA 'lightning_hihg'; the closest are lightning_high, lightning_low"))
        let empty = try #require(message { _ = try LoRACatalog.empty.resolve([LoRAUse(name: "x")], for: Self.tinyT2V) })
        #expect(empty.message.contains("the LoRA library is empty"))
    }

    @Test func aLoRAOfAnotherArchitectureSaysWhichItIsFor() throws {
        let error = try #require(message { _ = try catalog.resolve([LoRAUse(name: "five_style")], for: Self.tinyT2V) })
        #expect(
            error.message
                == "five_style is a LoRA for ti2v-5b (dim 3072); this server runs tiny:t2v-a14b (t2v-a14b)")
        let broken = try #require(message { _ = try catalog.resolve([LoRAUse(name: "broken")], for: Self.tinyT2V) })
        #expect(broken.message.contains("broken cannot be used: bad keys"))
    }

    @Test func expertsCountsAndDuplicatesAreChecked() throws {
        let resolved = try catalog.resolve(
            [LoRAUse(name: "lightning_high", expert: .high), LoRAUse(name: "detail", scale: 0.5)], for: Self.tinyT2V)
        #expect(resolved.map(\.sha256.first) == ["h", "d"] && resolved[1].scale == 0.5 && resolved[0].expert == .high)
        let three = try #require(
            message {
                _ = try catalog.resolve(
                    [LoRAUse(name: "lightning_high"), LoRAUse(name: "lightning_low"), LoRAUse(name: "detail")],
                    for: Self.tinyT2V)
            })
        #expect(three.message.contains("3 LoRAs on the high-noise expert; the workers hold at most 2 per expert"))
        let twice = try #require(
            message {
                _ = try catalog.resolve(
                    [LoRAUse(name: "detail", expert: .low), LoRAUse(name: "detail")], for: Self.tinyT2V)
            })
        #expect(twice.message.contains("given twice for the low expert"))
        var narrow = catalog
        narrow.maxRank = 2
        let rank = try #require(message { _ = try narrow.resolve([LoRAUse(name: "detail")], for: Self.tinyT2V) })
        #expect(rank.message.contains("has rank 4, above the workers' slots of rank 2 (serve --lora-max-rank)"))
        let one = LoRACatalog(entries: [entry("s", fits: ["tiny:ti2v-5b"])])
        let noExperts = try #require(
            message { _ = try one.resolve([LoRAUse(name: "s", expert: .high)], for: Self.tinyTI2V) })
        #expect(noExperts.message.contains("ti2v-5b has one transformer"))
    }

    @Test func theLightningRecipeSetsItsValuesAndAppliesItsPair() throws {
        var library = catalog
        library.recipeLoRAs = ["lightning-4step": RecipeLoRAs(high: "lightning_high", low: "lightning_low")]
        let request = GenerationRequest(
            prompt: "a fox", loras: [LoRAUse(name: "detail", scale: 0.7)], recipe: "lightning-4step")
        let spec = try Validation.resolve(request, model: Self.tinyT2V, loras: library, randomSeed: { 1 })
        #expect(spec.steps == 4 && spec.guidance == 1 && spec.guidance2 == 1 && spec.recipe == "lightning-4step")
        #expect(spec.sampler == SamplerSpec(shift: 5, denoisingSteps: [1000, 750, 500, 250]))
        #expect(spec.loras?.map(\.name) == ["lightning_high", "lightning_low", "detail"])
        #expect(spec.loras?.map(\.expert) == [.high, .low, .both])
        // A pair named by the job wins over the server's.
        var named = request
        named.recipeLoRAs = RecipeLoRAs(high: "detail", low: "lightning_low")
        named.loras = []
        #expect(
            try Validation.resolve(named, model: Self.tinyT2V, loras: library).loras?.map(\.name) == [
                "detail", "lightning_low",
            ])
    }

    @Test func aRecipeRefusesWhatContradictsIt() throws {
        let base = GenerationRequest(prompt: "a fox", recipe: "lightning-4step")
        var library = catalog
        let none = try #require(message { _ = try Validation.resolve(base, model: Self.tinyT2V, loras: library) })
        #expect(none.field == "recipe_loras" && none.message.contains("--recipe-lora lightning-4step=HIGH,LOW"))
        library.recipeLoRAs = ["lightning-4step": RecipeLoRAs(high: "lightning_high", low: "lightning_low")]
        var steps = base
        steps.steps = 8
        let stepsError = try #require(
            message { _ = try Validation.resolve(steps, model: Self.tinyT2V, loras: library) })
        #expect(stepsError.field == "steps" && stepsError.message.contains("takes 4 steps, not 8"))
        var guidance = base
        guidance.guidance = 5
        #expect(
            try #require(message { _ = try Validation.resolve(guidance, model: Self.tinyT2V, loras: library) }).field
                == "guidance")
        var unknown = base
        unknown.recipe = "turbo"
        let unknownError = try #require(
            message { _ = try Validation.resolve(unknown, model: Self.tinyT2V, loras: library) })
        #expect(unknownError.field == "recipe" && unknownError.message.contains("the recipes are lightning-4step"))
        let five = try #require(message { _ = try Validation.resolve(base, model: Self.tinyTI2V, loras: library) })
        #expect(five.field == "recipe" && five.message.contains("this model is ti2v-5b"))
        var pairOnly = GenerationRequest(prompt: "a fox")
        pairOnly.recipeLoRAs = RecipeLoRAs(high: "a", low: "b")
        #expect(
            try #require(message { _ = try Validation.resolve(pairOnly, model: Self.tinyT2V, loras: library) }).field
                == "recipe_loras")
    }

    @Test func theCSVColumnsReadLoRAsAndRecipes() throws {
        let row = try SpecFields.row(from: [
            "prompt": "a fox", "loras": "detail:0.8;lightning_high@high", "recipe": "lightning-4step",
            "recipe_loras": "lightning_high, lightning_low",
        ])
        #expect(
            row.request.loras == [LoRAUse(name: "detail", scale: 0.8), LoRAUse(name: "lightning_high", expert: .high)])
        #expect(row.request.recipe == "lightning-4step")
        #expect(row.request.recipeLoRAs == RecipeLoRAs(high: "lightning_high", low: "lightning_low"))
        #expect(throws: ReelError.self) { try SpecFields.row(from: ["prompt": "x", "recipe_loras": "only_one"]) }
    }
}
