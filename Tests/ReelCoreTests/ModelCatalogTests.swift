import Foundation
import Testing

@testable import ReelCore

@Suite struct ModelCatalogTests {
    @Test func builtInModels() throws {
        #expect(try ModelCatalog.resolve("tiny").architecture == .ti2v5B)
        #expect(try ModelCatalog.resolve("tiny:t2v-a14b").architecture == .t2vA14B)
        #expect(try ModelCatalog.resolve("random:ti2v-5b").randomWeights)
        let unknown = #expect(throws: ReelError.self) { try ModelCatalog.resolve("random:wan-99b") }
        #expect(unknown?.message.contains("random:ti2v-5b") == true)
    }

    @Test func directoriesAreRecognisedFromTheirConfigs() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("reel-model-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)

        let noIndex = #expect(throws: ReelError.self) { try ModelCatalog.resolve(root.path) }
        #expect(noIndex?.message.contains("model_index.json") == true)

        try Data(#"{"_class_name":"WanPipeline","transformer":["diffusers","WanTransformer3DModel"]}"#.utf8)
            .write(to: root.appendingPathComponent("model_index.json"))
        for component in ["transformer", "vae", "text_encoder", "tokenizer"] {
            try FileManager.default.createDirectory(
                at: root.appendingPathComponent(component), withIntermediateDirectories: true)
        }
        let missing = #expect(throws: ReelError.self) { try ModelCatalog.resolve(root.path) }
        #expect(missing?.message.contains("'scheduler'") == true)
        #expect(missing?.message.contains("Wan-AI/Wan2.2-TI2V-5B-Diffusers") == true)

        try FileManager.default.createDirectory(
            at: root.appendingPathComponent("scheduler"), withIntermediateDirectories: true)
        try Data(#"{"z_dim":48}"#.utf8).write(to: root.appendingPathComponent("vae/config.json"))
        #expect(try ModelCatalog.resolve(root.path).architecture == .ti2v5B)

        // A second expert makes it the A14B layout, whose VAE must be the 16-channel one.
        try Data(#"{"transformer":[],"transformer_2":[]}"#.utf8).write(
            to: root.appendingPathComponent("model_index.json"))
        try FileManager.default.createDirectory(
            at: root.appendingPathComponent("transformer_2"), withIntermediateDirectories: true)
        let wrongVAE = #expect(throws: ReelError.self) { try ModelCatalog.resolve(root.path) }
        #expect(wrongVAE?.message.contains("z_dim 48") == true)
        try Data(#"{"z_dim":16}"#.utf8).write(to: root.appendingPathComponent("vae/config.json"))
        #expect(try ModelCatalog.resolve(root.path).architecture == .t2vA14B)
    }
}
