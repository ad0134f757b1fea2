/// The Wan2.2 architectures Reel runs.
public enum Architecture: String, Sendable, Codable, CaseIterable {
    /// Wan2.2 TI2V-5B: one transformer, the Wan2.2 VAE (16x spatial compression, patch 2), 24 fps.
    case ti2v5B = "ti2v-5b"
    /// Wan2.2 T2V-A14B: two experts switched at a boundary ratio, the Wan2.1 VAE (8x, patch 2), 16 fps.
    case t2vA14B = "t2v-a14b"

    public var spatialStride: Int {
        switch self {
        case .ti2v5B: 32
        case .t2vA14B: 16
        }
    }

    public var temporalStride: Int { 4 }

    public var fps: Int {
        switch self {
        case .ti2v5B: 24
        case .t2vA14B: 16
        }
    }

    /// The Hugging Face repository a user downloads for this architecture.
    public var downloadName: String {
        switch self {
        case .ti2v5B: "Wan-AI/Wan2.2-TI2V-5B-Diffusers"
        case .t2vA14B: "Wan-AI/Wan2.2-T2V-A14B-Diffusers"
        }
    }
}
