/// The Wan2.2 architectures Reel runs.
public enum Architecture: String, Sendable, Codable, CaseIterable {
    /// Wan2.2 TI2V-5B: one transformer, the Wan2.2 VAE (16x spatial compression, patch 2), 24 fps.
    case ti2v5B = "ti2v-5b"
    /// Wan2.2 T2V-A14B: two experts switched at a boundary ratio, the Wan2.1 VAE (8x, patch 2), 16 fps.
    case t2vA14B = "t2v-a14b"
    /// Wan2.2 I2V-A14B: T2V-A14B's experts and VAE with the image's latent and a mask beside the noise (36 input
    /// channels), its own boundary; an image is required, a last frame optional.
    case i2vA14B = "i2v-a14b"

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

    /// Whether the model takes a first image: never, optionally (TI2V-5B: text or text and image) or always.
    public var imageInput: ImageInput {
        switch catalog.image {
        case .never: .none
        case .optional: .optional
        case .required: .required
        }
    }
    /// Whether the model takes a last image as well (first-last-frame to video).
    public var takesLastImage: Bool { catalog.lastImage }

    public enum ImageInput: String, Sendable {
        case none, optional, required
    }

    /// The architectures that take an image, for messages.
    public static var imageModels: [Architecture] { allCases.filter { $0.imageInput != .none } }
    /// The architectures that take a last image, for messages.
    public static var lastImageModels: [Architecture] { allCases.filter(\.takesLastImage) }
}
