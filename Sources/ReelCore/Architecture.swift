/// The Wan2.2 architectures Reel runs.
public enum Architecture: String, Sendable, Codable, CaseIterable {
    /// Wan2.2 TI2V-5B: one transformer, the Wan2.2 VAE (16x spatial compression, patch 2), 24 fps.
    case ti2v5B = "ti2v-5b"
    /// Wan2.2 T2V-A14B: two experts switched at a boundary ratio, the Wan2.1 VAE (8x, patch 2), 16 fps.
    case t2vA14B = "t2v-a14b"

    /// The catalog's entry (engine/reel_engine/catalog.json, embedded by scripts/embed-catalog.py).
    var catalog: CatalogData.ArchitectureEntry {
        guard let entry = CatalogData.architecture(named: rawValue) else {
            preconditionFailure("the model catalog has no architecture \(rawValue); run scripts/embed-catalog.py")
        }
        return entry
    }

    public var spatialStride: Int { catalog.spatialStride }
    public var temporalStride: Int { catalog.temporalStride }
    public var fps: Int { catalog.fps }

    /// The Hugging Face repository a user downloads for this architecture.
    public var downloadName: String { catalog.repo }
}
