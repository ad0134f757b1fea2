import Foundation
import Testing

@testable import ReelCore

/// ComfyUI prompts (API format) as the Wan2.2 templates build them, translated into Reel requests; and the errors
/// ComfyUI's shape gives a prompt Reel cannot run, naming the node, its class and the input.
struct ComfyWorkflowTests {
    static let a14b = try! ModelCatalog.resolve("tiny:t2v-a14b")
    static let ti2v = try! ModelCatalog.resolve("tiny")

    static func files(_ model: ModelInfo, loras: [String] = []) -> ComfyFiles {
        var files = ComfyFiles.officialNames(for: model.architecture)
        files.loras = loras
        files.inputImages = ["start.png"]
        return files
    }

    static func node(_ classType: String, _ inputs: [String: ComfyValue], title: String? = nil) -> ComfyValue {
        var node: [String: ComfyValue] = ["class_type": .string(classType), "inputs": .object(inputs)]
        if let title { node["_meta"] = ["title": .string(title)] }
        return .object(node)
    }

    static func link(_ id: String, _ index: Int64 = 0) -> ComfyValue { [.string(id), .integer(index)] }

    /// The T2V-A14B template's graph: two experts through ModelSamplingSD3, a KSamplerAdvanced pair split at
    /// `split`, and (when `lightning`) the switch nodes choosing the 4-step LoRA branch, as the 2026 template does.
    static func a14bPrompt(steps: Int64 = 20, split: Int64 = 10, lightning: Bool? = nil) -> [String: ComfyValue] {
        var p: [String: ComfyValue] = [
            "1": node(
                "UNETLoader",
                ["unet_name": "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors", "weight_dtype": "default"]),
            "2": node(
                "UNETLoader",
                ["unet_name": "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors", "weight_dtype": "default"]),
            "3": node(
                "CLIPLoader",
                ["clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan", "device": "default"]),
            "4": node("VAELoader", ["vae_name": "wan_2.1_vae.safetensors"]),
            "5": node("ModelSamplingSD3", ["model": link("1"), "shift": 8.0]),
            "6": node("ModelSamplingSD3", ["model": link("2"), "shift": 8.000000000000002]),
            "7": node("CLIPTextEncode", ["text": "a red kite over the dunes", "clip": link("3")]),
            "8": node("CLIPTextEncode", ["text": "blurry", "clip": link("3")]),
            "9": node("EmptyHunyuanLatentVideo", ["width": 64, "height": 48, "length": 9, "batch_size": 1]),
            "10": node(
                "KSamplerAdvanced",
                [
                    "model": link("5"), "add_noise": "enable", "noise_seed": .unsigned(18_446_744_073_709_551_615),
                    "steps": .integer(steps), "cfg": 3.5, "sampler_name": "euler", "scheduler": "simple",
                    "positive": link("7"), "negative": link("8"), "latent_image": link("9"), "start_at_step": 0,
                    "end_at_step": .integer(split), "return_with_leftover_noise": "enable",
                ]),
            "11": node(
                "KSamplerAdvanced",
                [
                    "model": link("6"), "add_noise": "disable", "noise_seed": 0, "steps": .integer(steps), "cfg": 3.0,
                    "sampler_name": "euler", "scheduler": "simple", "positive": link("7"), "negative": link("8"),
                    "latent_image": link("10"), "start_at_step": .integer(split), "end_at_step": 10000,
                    "return_with_leftover_noise": "disable",
                ]),
            "12": node("VAEDecode", ["samples": link("11"), "vae": link("4")]),
            "13": node("CreateVideo", ["images": link("12"), "fps": 16.0]),
            "14": node(
                "SaveVideo",
                ["video": link("13"), "filename_prefix": "video/ComfyUI", "format": "auto", "codec": "auto"],
                title: "Save Video"),
        ]
        if let lightning {
            // The 2026 template: PrimitiveBoolean → ComfySwitchNode per value, LoRA loaders on the turbo branch.
            p["20"] = node("PrimitiveBoolean", ["value": .bool(lightning)])
            p["21"] = node(
                "LoraLoaderModelOnly", ["model": link("1"), "lora_name": "lx_high.safetensors", "strength_model": 1.0])
            p["22"] = node(
                "LoraLoaderModelOnly", ["model": link("2"), "lora_name": "lx_low.safetensors", "strength_model": 1.0])
            p["23"] = node("ComfySwitchNode", ["on_false": link("1"), "on_true": link("21"), "switch": link("20")])
            p["24"] = node("ComfySwitchNode", ["on_false": link("2"), "on_true": link("22"), "switch": link("20")])
            p["25"] = node("PrimitiveInt", ["value": 20])
            p["26"] = node("PrimitiveInt", ["value": 4])
            p["27"] = node("ComfySwitchNode", ["on_false": link("25"), "on_true": link("26"), "switch": link("20")])
            p["28"] = node("PrimitiveInt", ["value": 10])
            p["29"] = node("PrimitiveInt", ["value": 2])
            p["30"] = node("ComfySwitchNode", ["on_false": link("28"), "on_true": link("29"), "switch": link("20")])
            p["31"] = node("PrimitiveFloat", ["value": 0.5])
            p["32"] = node("PrimitiveFloat", ["value": 16])
            p["33"] = node(
                "ComfyMathExpression",
                ["expression": "floor(a * b) + 1", "values.a": link("31"), "values.b": link("32")])
            p["5"] = node("ModelSamplingSD3", ["model": link("23"), "shift": 5.0])
            p["6"] = node("ModelSamplingSD3", ["model": link("24"), "shift": 5.0])
            p["9"] = node(
                "EmptyHunyuanLatentVideo", ["width": 64, "height": 48, "length": link("33", 1), "batch_size": 1])
            for id in ["10", "11"] {
                guard case .object(var sampler) = p[id]!, case .object(var inputs) = sampler["inputs"]! else {
                    continue
                }
                inputs["steps"] = link("27")
                inputs[id == "10" ? "end_at_step" : "start_at_step"] = link("30")
                sampler["inputs"] = .object(inputs)
                p[id] = .object(sampler)
            }
        }
        return p
    }

    @Test func theA14BPairBecomesOneJobSwitchingExpertsAtTheSplitStep() throws {
        let job = try ComfyWorkflow(model: Self.a14b, files: Self.files(Self.a14b)).translate(
            .object(Self.a14bPrompt()))
        let request = job.request
        #expect(request.prompt == "a red kite over the dunes" && request.negativePrompt == "blurry")
        #expect(request.size == "64x48" && request.frames == 9 && request.fps == 16 && request.steps == 20)
        #expect(request.guidance == 3.5 && request.guidance2 == 3.0)
        #expect(request.seed == UInt64(Int64.max), "2^64-1 is read whole and folded below 2^63")
        #expect(job.substitutions.contains { $0.hasPrefix("seed 18446744073709551615") })
        let sampler = try #require(request.sampler)
        #expect(sampler.kind == SamplerSpec.flowEuler && sampler.shift == 8 && sampler.switchStep == 10)
        #expect(sampler.denoisingSteps == ComfySchedule.simple(steps: 20) && sampler.denoisingSteps.first == 1000)
        #expect(job.samplerNodes == ["10", "11"] && job.outputNode == "14" && job.outputTitle == "Save Video")
        #expect(job.origin(ofField: "steps") == .init(node: "10", input: "steps"))
        #expect(job.origin(ofField: "size") == .init(node: "9", input: "width"))
        let spec = try Validation.resolve(request, model: Self.a14b)
        #expect(spec.sampler?.switchStep == 10 && spec.guidance2 == 3.0)
    }

    @Test func theLightningSwitchTakesTheLoRABranchOnlyWhenOn() throws {
        let workflow = ComfyWorkflow(
            model: Self.a14b, files: Self.files(Self.a14b, loras: ["lx_high.safetensors", "lx_low.safetensors"]))
        let on = try workflow.translate(.object(Self.a14bPrompt(lightning: true)))
        #expect(on.request.steps == 4 && on.request.frames == 9, "floor(0.5 * 16) + 1")
        #expect(on.request.loras == [LoRAUse(name: "lx_high", expert: .high), LoRAUse(name: "lx_low", expert: .low)])
        #expect(on.request.sampler?.denoisingSteps == [1000, 750, 500, 250], "the 4-step recipe's positions")
        #expect(on.request.sampler?.switchStep == 2 && on.request.sampler?.shift == 5)
        let off = try workflow.translate(.object(Self.a14bPrompt(lightning: false)))
        #expect(off.request.steps == 20 && off.request.loras.isEmpty && off.request.sampler?.switchStep == 10)
        // Lazily: the untaken branch's LoRA files need not exist.
        let bare = try ComfyWorkflow(model: Self.a14b, files: Self.files(Self.a14b)).translate(
            .object(Self.a14bPrompt(lightning: false)))
        #expect(bare.request.loras.isEmpty)
    }

    @Test func comfyUIsSimpleScheduleIsItsPositionsOnTheThousandSteps() {
        #expect(ComfySchedule.simple(steps: 4) == [1000, 750, 500, 250])
        #expect(ComfySchedule.simple(steps: 3) == [1000, 667, 334], "1000 − int(x · 333.33…)")
        #expect(ComfySchedule.simple(steps: 1) == [1000])
    }

    @Test func theFiveBTemplateIsOneKSamplerAndUniPCIsRecordedAsReelsOwn() throws {
        let p: [String: ComfyValue] = [
            "1": Self.node("UNETLoader", ["unet_name": "wan2.2_ti2v_5B_fp16.safetensors", "weight_dtype": "default"]),
            "2": Self.node("CLIPLoader", ["clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan"]),
            "3": Self.node("VAELoader", ["vae_name": "wan2.2_vae.safetensors"]),
            "4": Self.node("ModelSamplingSD3", ["model": Self.link("1"), "shift": 8]),
            "5": Self.node("CLIPTextEncode", ["text": "tea", "clip": Self.link("2")]),
            "6": Self.node("CLIPTextEncode", ["text": "", "clip": Self.link("2")]),
            "7": Self.node("LoadImage", ["image": "start.png", "upload": "image"]),
            "8": Self.node(
                "Wan22ImageToVideoLatent",
                [
                    "vae": Self.link("3"), "width": 64, "height": 64, "length": 5, "batch_size": 1,
                    "start_image": Self.link("7"),
                ]),
            "9": Self.node(
                "KSampler",
                [
                    "model": Self.link("4"), "seed": 7, "steps": 3, "cfg": 5, "sampler_name": "uni_pc",
                    "scheduler": "simple", "positive": Self.link("5"), "negative": Self.link("6"),
                    "latent_image": Self.link("8"), "denoise": 1,
                ]),
            "10": Self.node("VAEDecode", ["samples": Self.link("9"), "vae": Self.link("3")]),
            "11": Self.node("CreateVideo", ["images": Self.link("10"), "fps": 24]),
            "12": Self.node(
                "SaveVideo",
                ["video": Self.link("11"), "filename_prefix": "clips/tea", "format": "auto", "codec": "auto"]),
        ]
        let job = try ComfyWorkflow(model: Self.ti2v, files: Self.files(Self.ti2v)).translate(.object(p))
        #expect(job.startImage == "start.png" && job.request.fps == 24 && job.request.seed == 7)
        #expect(job.request.sampler?.kind == SamplerSpec.flowUniPC && job.request.sampler?.switchStep == nil)
        #expect(job.substitutions.contains { $0.contains("uni_pc") && $0.contains("UniPC") })
        #expect(job.filenamePrefix == "clips/tea")
    }

    func rejection(_ prompt: [String: ComfyValue], model: ModelInfo = a14b) -> ComfyRejection? {
        do {
            _ = try ComfyWorkflow(model: model, files: Self.files(model)).translate(.object(prompt))
            return nil
        } catch {
            return error
        }
    }

    func set(_ p: inout [String: ComfyValue], _ id: String, _ name: String, _ value: ComfyValue) {
        guard case .object(var node) = p[id]!, case .object(var inputs) = node["inputs"]! else { return }
        inputs[name] = value
        node["inputs"] = .object(inputs)
        p[id] = .object(node)
    }

    @Test func errorsNameTheNodeItsClassAndTheInput() throws {
        func expect(
            _ prompt: [String: ComfyValue], node: String, type: String, input: String?, _ comment: Comment? = nil
        ) {
            guard let rejection = rejection(prompt) else {
                Issue.record("accepted, expected \(type) on \(node)")
                return
            }
            let errors = rejection.nodeErrors[node]
            #expect(errors?.errors.first?.type == type, "\(rejection.value)")
            if let input { #expect(errors?.errors.first?.extraInfo["input_name"] == .string(input)) }
            #expect(errors?.classType == (prompt[node]?.object?["class_type"]?.string ?? ""))
        }
        var p = Self.a14bPrompt()
        p["99"] = Self.node("SaveImage", ["images": Self.link("12")])
        #expect(rejection(p)?.error.type == "invalid_prompt" && rejection(p)?.nodeErrors["99"] != nil)

        // One input changed each: (node, input, value, the error on that node and input).
        let cases: [(String, String, ComfyValue, String)] = [
            ("10", "positive", Self.link("404"), "bad_linked_input"),
            ("10", "positive", Self.link("9"), "return_type_mismatch"),
            ("10", "sampler_name", "dpmpp_2m", "value_not_in_list"),
            ("10", "steps", 0, "value_smaller_than_min"),
            ("9", "batch_size", 2, "custom_validation_failed"),
            ("1", "unet_name", "wan2.2_ti2v_5B_fp16.safetensors", "value_not_in_list"),
            ("11", "start_at_step", 12, "custom_validation_failed"),
            ("10", "cfg", "high", "invalid_input_type"),
        ]
        for (node, input, value, type) in cases {
            p = Self.a14bPrompt()
            set(&p, node, input, value)
            expect(p, node: node, type: type, input: input)
        }
        p = Self.a14bPrompt()
        set(&p, "5", "model", Self.link("6"))
        set(&p, "6", "model", Self.link("5"))
        expect(p, node: "6", type: "bad_linked_input", input: nil, "a cycle")
        p = Self.a14bPrompt()
        p["14"] = nil
        #expect(rejection(p)?.error.type == "prompt_no_outputs")
        // A model file of another architecture on the right node; one Reel does not have but of this one runs.
        p = Self.a14bPrompt()
        set(&p, "1", "unet_name", "my_t2v_14B_high_finetune.safetensors")
        let job = try ComfyWorkflow(model: Self.a14b, files: Self.files(Self.a14b)).translate(.object(p))
        #expect(job.request.steps == 20)
    }

    @Test func aDeepChainIsRefusedNotFollowedToTheStacksEnd() {
        var p = Self.a14bPrompt()
        // 5,000 PrimitiveInt-free pass-through links: LoRA loaders chained on the model.
        var previous = "1"
        for i in 0..<5000 {
            p["l\(i)"] = Self.node(
                "LoraLoaderModelOnly", ["model": Self.link(previous), "lora_name": "x", "strength_model": 1])
            previous = "l\(i)"
        }
        set(&p, "5", "model", Self.link(previous))
        let rejection = rejection(p)
        #expect(rejection?.nodeErrors.values.first?.errors.first?.message.contains("deeper than") == true)
    }

    @Test func mathExpressions() throws {
        #expect(try MathExpression.evaluate("floor(a * b) + 1", variables: ["a": 5, "b": 16]) == 81)
        #expect(try MathExpression.evaluate("floor (a * b + 1)", variables: ["a": 0.25, "b": 16]) == 5)
        #expect(try MathExpression.evaluate("-(2 ** 3) // 3 + max(1, 2, 7) % 4", variables: [:]) == -3 + 3)
        #expect(throws: MathExpression.Failure.self) { try MathExpression.evaluate("a + ", variables: ["a": 1]) }
        #expect(throws: MathExpression.Failure.self) { try MathExpression.evaluate("c * 2", variables: ["a": 1]) }
        #expect(throws: MathExpression.Failure.self) {
            try MathExpression.evaluate(String(repeating: "(", count: 100), variables: [:])
        }
    }
}
