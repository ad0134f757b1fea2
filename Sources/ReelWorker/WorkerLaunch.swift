/// How to start one engine worker: which device and model, where its data lives.
public struct WorkerLaunch: Sendable, Equatable {
    public var engine: EngineLocation
    public var device: String
    public var model: String
    public var dataDirectory: String
    public var memorySaving: Bool
    /// Extra environment variables for the worker (tests set REEL_ENGINE_ALLOW_FAULTS here).
    public var environment: [String: String]

    public init(
        engine: EngineLocation, device: String, model: String, dataDirectory: String, memorySaving: Bool = false,
        environment: [String: String] = [:]
    ) {
        self.engine = engine
        self.device = device
        self.model = model
        self.dataDirectory = dataDirectory
        self.memorySaving = memorySaving
        self.environment = environment
    }

    public var arguments: [String] {
        var arguments = ["-m", "reel_engine.worker", "--device", device, "--model", model, "--data-dir", dataDirectory]
        if memorySaving { arguments.append("--memory-saving") }
        return arguments
    }
}
