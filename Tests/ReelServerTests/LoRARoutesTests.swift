import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ReelCore
import ReelTestSupport
import Testing

@testable import ReelServer

/// The LoRA library over HTTP (real sockets): the listing, and LoRAs and recipes on job submissions.
@Suite struct LoRARoutesTests {
    /// A server of `model` over a library holding a tiny-model LoRA in each layout, a full-size TI2V-5B one, and a
    /// file with a key Reel does not understand.
    func withLibrary<Value>(
        model: String = "tiny:t2v-a14b", recipe: Bool = true,
        _ body: @Sendable (TestServer, any TestClientProtocol, URL) async throws -> Value
    ) async throws -> Value {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("reel-lora-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        for layout in LoRAFixtures.Layout.allCases {
            try LoRAFixtures.write(
                LoRAFixtures.pairs(.tiny, rank: 4, layout: layout), name: "tiny_\(layout.rawValue)", in: directory)
        }
        try LoRAFixtures.write(
            LoRAFixtures.pairs(.ti2v5B, rank: 2, layout: .kohya, blocks: 0..<1), name: "five_style", in: directory)
        try LoRAFixtures.write(
            LoRAFixtures.pairs(.tiny, rank: 4, layout: .kohya)
                + [LoRAFixtures.tensor("diffusion_model.blocks.0.mystery.lora_down.weight", [4, 32])],
            name: "broken", in: directory)
        let server = try TestServer(
            model: model, loraDirectory: directory.path,
            recipeLoRAs: recipe ? ["lightning-4step": RecipeLoRAs(high: "tiny_kohya", low: "tiny_musubi")] : [:])
        return try await server.test(.live) { client in try await body(server, client, directory) }
    }

    @Test func theListingDescribesEveryFile() async throws {
        try await withLibrary { _, client, directory in
            let response = try await client.execute(uri: "/v1/loras", method: .get)
            #expect(response.status == .ok)
            let data = try #require(try response.object()["data"] as? [[String: Any]])
            #expect(
                data.map { $0["name"] as? String }
                    == ["broken", "five_style", "tiny_comfy", "tiny_diffusers", "tiny_kohya", "tiny_musubi"])
            let byName = Dictionary(uniqueKeysWithValues: data.map { ($0["name"] as! String, $0) })
            let kohya = try #require(byName["tiny_kohya"])
            #expect(kohya["format"] as? String == "kohya" && kohya["rank"] as? Int == 4 && kohya["dim"] as? Int == 32)
            #expect(kohya["fits_server"] as? Bool == true && kohya["error"] is NSNull)
            let bytes = try Data(contentsOf: directory.appendingPathComponent("tiny_kohya.safetensors"))
            #expect(kohya["bytes"] as? Int == bytes.count)
            #expect(kohya["sha256"] as? String == SHA256.hash(data: bytes).hexDigits)
            #expect(byName["tiny_musubi"]?["format"] as? String == "musubi")
            let five = try #require(byName["five_style"])
            #expect(five["architectures"] as? [String] == ["ti2v-5b"] && five["fits_server"] as? Bool == false)
            let broken = try #require(byName["broken"])
            #expect(broken["format"] is NSNull && broken["fits_server"] as? Bool == false)
            #expect(
                (broken["error"] as? String)?.contains("'diffusion_model.blocks.0.mystery.lora_down.weight'") == true)
        }
    }

    @Test func aJobRecordsItsLoRAsByContent() async throws {
        try await withLibrary { server, client, _ in
            let response = try await client.submit(
                #"{"prompt": "a fox", "loras": [{"name": "tiny_comfy", "scale": 0.8, "expert": "high"}, {"name": "tiny_diffusers"}]}"#
            )
            #expect(response.status == .created, "\(String(buffer: response.body))")
            let spec = try #require(try response.object()["spec"] as? [String: Any])
            let loras = try #require(spec["loras"] as? [[String: Any]])
            #expect(loras.map { $0["name"] as? String } == ["tiny_comfy", "tiny_diffusers"])
            #expect(
                loras.map { $0["scale"] as? Double } == [0.8, 1]
                    && loras.map { $0["expert"] as? String } == ["high", "both"])
            #expect((loras[0]["sha256"] as? String)?.count == 64)
            let stored = try #require(try await server.store.jobs(state: nil, limit: 10, before: nil).first)
            #expect(stored.spec.loras?.count == 2 && stored.spec.loraKey.count == 64)
            // The text form of the CSV column works in JSON too.
            let text = try await client.submit(#"{"prompt": "a fox", "loras": "tiny_comfy:0.8@high;tiny_diffusers"}"#)
            let again = try #require((try text.object()["spec"] as? [String: Any])?["loras"] as? [[String: Any]])
            #expect(again as NSArray == loras as NSArray)
        }
    }

    @Test func badLoRAsAre400sNamingTheField() async throws {
        try await withLibrary { server, client, _ in
            let cases: [(String, String, String)] = [
                (#"{"prompt": "x", "loras": [{"name": "tiny_komfy"}]}"#, "loras", "the closest are tiny_comfy"),
                (
                    #"{"prompt": "x", "loras": [{"name": "five_style"}]}"#, "loras",
                    "five_style is a LoRA for ti2v-5b (dim 3072); this server runs tiny:t2v-a14b"
                ),
                (#"{"prompt": "x", "loras": [{"name": "broken"}]}"#, "loras", "does not understand"),
                (
                    #"{"prompt": "x", "loras": [{"name": "tiny_comfy", "expert": "middle"}]}"#, "loras[0].expert",
                    "high, low or both"
                ),
                (
                    #"{"prompt": "x", "loras": [{"name": "tiny_comfy", "scale": 50}]}"#, "loras[0].scale",
                    "between -10 and 10"
                ),
                (#"{"prompt": "x", "loras": [{"scale": 1}]}"#, "loras[0].name", "missing"),
                (#"{"prompt": "x", "loras": [{"name": "../../etc/passwd"}]}"#, "loras[0].name", "not a LoRA name"),
                (
                    #"{"prompt": "x", "loras": [{"name": "tiny_comfy", "weight": 1}]}"#, "loras[0].weight",
                    "unknown field"
                ),
                (#"{"prompt": "x", "loras": 3}"#, "loras", "must be a list"),
                (#"{"prompt": "x", "recipe": "lightning-4step", "steps": 6}"#, "steps", "takes 4 steps, not 6"),
                (#"{"prompt": "x", "recipe": "turbo"}"#, "recipe", "the recipes are lightning-4step"),
            ]
            for (body, field, says) in cases {
                let response = try await client.submit(body)
                #expect(response.status == .badRequest, "\(body)")
                let error = try response.apiError()
                #expect(error["field"] as? String == field, "\(body): \(error)")
                #expect((error["message"] as? String)?.contains(says) == true, "\(body): \(error)")
            }
            #expect(try await server.jobCount() == 0, "a refused submission changes nothing")
        }
    }

    @Test func theRecipeUsesTheServersPairUnlessTheJobNamesOne() async throws {
        try await withLibrary { _, client, _ in
            let response = try await client.submit(#"{"prompt": "x", "recipe": "lightning-4step"}"#)
            #expect(response.status == .created, "\(String(buffer: response.body))")
            let spec = try #require(try response.object()["spec"] as? [String: Any])
            #expect(
                spec["steps"] as? Int == 4 && spec["guidance"] as? Double == 1 && spec["guidance_2"] as? Double == 1)
            #expect(spec["recipe"] as? String == "lightning-4step")
            let loras = try #require(spec["loras"] as? [[String: Any]])
            #expect(loras.map { "\($0["name"]!)@\($0["expert"]!)" } == ["tiny_kohya@high", "tiny_musubi@low"])
            let named = try await client.submit(
                #"{"prompt": "x", "recipe": "lightning-4step", "recipe_loras": {"high": "tiny_comfy", "low": "tiny_diffusers"}}"#
            )
            let namedLoras = try #require((try named.object()["spec"] as? [String: Any])?["loras"] as? [[String: Any]])
            #expect(namedLoras.map { $0["name"] as? String } == ["tiny_comfy", "tiny_diffusers"])
        }
        try await withLibrary(recipe: false) { _, client, _ in
            let response = try await client.submit(#"{"prompt": "x", "recipe": "lightning-4step"}"#)
            #expect(response.status == .badRequest)
            #expect(try response.apiError()["field"] as? String == "recipe_loras")
        }
    }

    @Test func theSameKeyWithAChangedLoRAFileIsAConflict() async throws {
        try await withLibrary { server, client, directory in
            let body = #"{"prompt": "x", "loras": [{"name": "tiny_comfy"}]}"#
            let first = try await client.submit(body, key: "k-1")
            #expect(first.status == .created)
            #expect(try await client.submit(body, key: "k-1").status == .ok, "a retry of the same request")
            // The file is replaced by another LoRA under the same name: the same body is now another request.
            try LoRAFixtures.write(
                LoRAFixtures.pairs(.tiny, rank: 4, layout: .comfy, seed: 99), name: "tiny_comfy", in: directory)
            let changed = try await client.submit(body, key: "k-1")
            #expect(changed.status == .conflict, "\(String(buffer: changed.body))")
            #expect(try changed.apiError()["field"] as? String == "Idempotency-Key")
            #expect(try await server.jobCount() == 1)
        }
    }

    @Test func aCSVBatchRowWithABadLoRAIsReportedByRowAndColumn() async throws {
        try await withLibrary { server, client, _ in
            let csv = "prompt,loras\na fox,tiny_comfy:0.5\na hen,nope\na cat,tiny_kohya@sideways\n"
            let response = try await client.execute(
                uri: "/v1/batches", method: .post, headers: [.contentType: "text/csv"], body: ByteBuffer(string: csv))
            #expect(response.status == .created, "\(String(buffer: response.body))")
            let object = try response.object()
            let rejected = try #require(object["rejected"] as? [[String: Any]], "\(object)")
            #expect(rejected.map { $0["row"] as? Int } == [3, 4])
            #expect(rejected.map { $0["column"] as? String } == ["loras", "loras"])
            #expect((rejected[0]["message"] as? String)?.contains("unknown LoRA 'nope'") == true)
            #expect((object["accepted"] as? [[String: Any]])?.map { $0["row"] as? Int } == [2])
            let jobs = try await server.store.jobs(state: nil, limit: 10, before: nil)
            #expect(jobs.count == 1 && jobs.first?.spec.loras?.first?.scale == 0.5)
        }
    }
}
