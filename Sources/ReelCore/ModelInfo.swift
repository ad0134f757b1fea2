/// What Reel must know about a model before loading it: its architecture, strides, frame rate and defaults.
public struct ModelInfo: Sendable, Equatable {
    /// The name the user gave: `tiny`, `tiny:t2v-a14b`, `random:ti2v-5b`, `random:t2v-a14b`, or a directory path.
    public var name: String
    public var architecture: Architecture
    /// Random-weight models produce noise; their metadata says so.
    public var randomWeights: Bool
    public var defaults: GenerationDefaults

    public init(
        name: String, architecture: Architecture, randomWeights: Bool, defaults: GenerationDefaults, tiny: Bool? = nil
    ) {
        self.name = name
        self.architecture = architecture
        self.randomWeights = randomWeights
        self.defaults = defaults
        self.isTiny = tiny ?? name.hasPrefix("tiny")
    }

    public var spatialStride: Int { architecture.spatialStride }
    public var temporalStride: Int { architecture.temporalStride }
    public var fps: Int { architecture.fps }
    /// A tiny model: `tiny:*`, or files of a tiny model's shapes (a ComfyUI folder the tests write).
    public var isTiny: Bool
}

/// The values a job takes when the user leaves them out.
public struct GenerationDefaults: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var frames: Int
    public var steps: Int
    public var guidance: Double
    /// The low-noise expert's guidance (T2V-A14B); nil where the model has one transformer.
    public var guidance2: Double?

    public init(width: Int, height: Int, frames: Int, steps: Int, guidance: Double, guidance2: Double? = nil) {
        self.width = width
        self.height = height
        self.frames = frames
        self.steps = steps
        self.guidance = guidance
        self.guidance2 = guidance2
    }

    init(_ catalog: CatalogData.Defaults) {
        self.init(
            width: catalog.width, height: catalog.height, frames: catalog.frames, steps: catalog.steps,
            guidance: catalog.guidance, guidance2: catalog.guidance2)
    }

    /// A full-size model's defaults (a directory, or `random:`), from the catalog.
    public static func fullSize(_ architecture: Architecture) -> GenerationDefaults {
        GenerationDefaults(architecture.catalog.defaults)
    }
}
