import ArgumentParser
import Foundation
import Logging
import ReelCore
import ReelScheduler
import ReelServer
import ReelStore
import ReelWorker
import ServiceLifecycle

/// `reel serve`: the HTTP API, the scheduler and the worker supervisor in one process.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the queue, one warm worker per GPU slot, and the HTTP API."
    )

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on.") var port = 8188
    @Option(help: "Where jobs, outputs and models live (default $REEL_DATA_DIR or ~/.local/share/reel).")
    var dataDir: String?
    @Option(
        help: ArgumentHelp(
            "tiny, tiny:t2v-a14b, random:ti2v-5b, random:t2v-a14b, a diffusers Wan2.2 directory, or comfyui:DIR (a "
                + "ComfyUI models/ folder; see --unet)."))
    var model = "tiny"
    @OptionGroup var comfy: ComfyModelOptions
    @Option(help: "auto (every CUDA GPU, else one CPU slot), cpu, cpu,cpu, or cuda:0,cuda:1,…")
    var devices = "auto"
    @Option(
        help: ArgumentHelp(
            "How slots use the devices: replica (one worker per device), split (text encoder on one GPU, transformer "
                + "and VAE on the next), parallel:K (K GPUs run each job), or auto (chosen from memory and the queue).")
    )
    var placement = "replica"
    @Option(
        help: ArgumentHelp(
            "With --placement auto, change the layout when the queue has called for another one this many seconds "
                + "(replicas for a backlog, parallel groups when idle); 0 keeps the layout chosen at start.",
            valueName: "seconds"))
    var relayoutAfter: Double = 20
    @Option(help: ArgumentHelp("Cap each worker's GPU memory at this many GiB.", valueName: "GiB"))
    var memoryBudget: Double?
    @Option(
        help: ArgumentHelp(
            "An approximate speed-up that changes the videos, off by default and recorded in each job.json: "
                + "first-block-cache[:THRESHOLD].", valueName: "name"))
    var approximate: String?
    @Option(help: "This node's name; it owns the leases of the jobs it runs (default: the host name).")
    var node: String?
    @Option(
        help: ArgumentHelp(
            "Where jobs live: a SQLite file (default DATA_DIR/reel.sqlite), or postgres://USER@HOST:PORT/DATABASE, "
                + "one queue that several nodes share.", valueName: "path-or-url"))
    var database: String?
    @Option(
        help: ArgumentHelp(
            "With a shared --database, the URL other nodes redirect clients to for this node's videos "
                + "(default http://HOST:PORT).", valueName: "url"))
    var advertiseURL: String?
    @Option(
        help: "Where job outputs go (default DATA_DIR/outputs); on a disk every node mounts, any node serves any video."
    )
    var outputDir: String?
    @Option(help: "Attempts after which a job fails for good.") var maxAttempts = 3
    @Option(
        help: ArgumentHelp(
            "A slot takes a job only while the outputs' file system has this much free (bytes, or 500M, 2G; 0: "
                + "no check); otherwise it waits (default: what one job at the model's default size may write).",
            valueName: "size"))
    var minFreeDisk: String?
    @Option(help: "Seconds without progress after which a worker is killed and its job retried.")
    var stallTimeout: Double = 300
    @Option(help: "Seconds a starting worker may take to load its model.") var startupTimeout: Double = 1800
    @Option(help: "On SIGTERM, seconds running jobs may go on before they are stopped and left queued.")
    var grace: Double = 30
    @Option(help: "Seconds a claim holds without renewal.") var leaseSeconds: Double = 60
    @Option(help: "Save a checkpoint every N denoising steps, so a retried job resumes where it stopped (0: never).")
    var checkpointEvery = 5
    @Option(help: "Interpolate frames with this RIFE checkpoint (Practical-RIFE flownet.pkl) instead of minterpolate.")
    var rife: String?
    @Option(help: "Largest request body in bytes.") var maxBodyBytes = 1 << 20
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel = "info"
    @OptionGroup var styleFile: StyleFileOption
    @OptionGroup var loraLibrary: LoRALibraryOptions
    @Option(
        help: ArgumentHelp(
            "An idle slot takes the oldest queued job of the LoRA set its worker holds before older jobs of other "
                + "sets, but no job is passed over for longer than this many seconds past its turn (0: plain queue "
                + "order).", valueName: "seconds"))
    var affinityWindow: Double = 30
    @Option(help: "Most frames one job may generate (before interpolation).") var maxFrames = GenerationLimits.standard
        .maxFrames
    @Option(help: "Most pixels per frame (width × height).") var maxPixels = GenerationLimits.standard.maxPixelsPerFrame
    @Option(help: "Most denoising steps per job.") var maxSteps = GenerationLimits.standard.maxSteps
    @Option(help: "Most characters in a prompt.") var maxPromptCharacters = GenerationLimits.standard
        .maxPromptCharacters
    @Option(help: "Largest batch body (CSV or JSON) in bytes.") var maxBatchBytes = 16 << 20
    @Option(help: "Most rows in one batch.") var maxBatchRows = 10_000
    @Option(help: "Largest image (image, last_image, input_reference) in bytes.") var maxImageBytes = ImageLimits
        .standard.maxBytes
    @Option(help: "Most pixels an image may declare (a larger one is refused unread).") var maxImagePixels =
        ImageLimits.standard.maxPixels
    @Option(
        help: ArgumentHelp(
            "A file of API keys, one per line (blank lines and # comments ignored); with keys (here or in "
                + "$REEL_API_KEYS, comma-separated) every route but /healthz needs 'Authorization: Bearer KEY'.",
            valueName: "file"))
    var apiKeyFile: String?
    @Option(
        help: ArgumentHelp(
            "Seconds a connection may take to send a complete request head (from opening, or from its last "
                + "answer), or pause within a body, before it is closed (408).", valueName: "seconds"))
    var requestTimeout: Double = 30
    @Option(
        help: ArgumentHelp(
            "Most connections open at once; at the limit a new one closes the longest-idle one (default: half "
                + "the open-file limit, after raising the soft limit to the hard one, at most 10000)."))
    var maxConnections: Int?
    @Option(help: "Most jobs one API key may have queued at once (0: no limit).") var maxQueuedPerKey = 0
    @Option(help: "Most requests one API key may make per minute (0: no limit).") var rateLimit = 0

    func validate() throws {
        for (name, value) in [("--max-queued-per-key", maxQueuedPerKey), ("--rate-limit", rateLimit)] where value < 0 {
            throw ValidationError("\(name) must be 0 (no limit) or more, not \(value)")
        }
        for (name, value, most) in [
            ("--max-batch-bytes", maxBatchBytes, 1 << 30), ("--max-batch-rows", maxBatchRows, 1_000_000),
            ("--max-body-bytes", maxBodyBytes, 1 << 30), ("--max-image-bytes", maxImageBytes, 1 << 30),
            ("--max-image-pixels", maxImagePixels, 1 << 30),
        ] where !(1...most).contains(value) {
            throw ValidationError("\(name) must be between 1 and \(most), not \(value)")
        }
        guard requestTimeout > 0 && requestTimeout <= 86_400 else {
            throw ValidationError("--request-timeout must be a number of seconds above 0 and at most 86400")
        }
        if let maxConnections, maxConnections < 1 {
            throw ValidationError("--max-connections must be at least 1, not \(maxConnections)")
        }
        // Bounded so that no product of limits (frames × pixels, prompt × 4) can overflow.
        for (name, value, most) in [
            ("--max-frames", maxFrames, 100_000), ("--max-pixels", maxPixels, 1 << 30),
            ("--max-steps", maxSteps, 100_000), ("--max-prompt-characters", maxPromptCharacters, 1_000_000),
        ] where !(1...most).contains(value) {
            throw ValidationError("\(name) must be between 1 and \(most), not \(value)")
        }
        if let memoryBudget, !(memoryBudget > 0) {
            throw ValidationError("--memory-budget must be a positive number of GiB, not \(memoryBudget)")
        }
        guard affinityWindow >= 0 && affinityWindow <= 86_400 else {
            throw ValidationError("--affinity-window must be between 0 and 86400 seconds, not \(affinityWindow)")
        }
        guard relayoutAfter >= 0 && relayoutAfter.isFinite else {
            throw ValidationError("--relayout-after must be 0 (never) or a number of seconds, not \(relayoutAfter)")
        }
        let keys = try apiKeys()
        if keys.isEmpty && !ReelServerConfiguration.isLoopback(host) {
            throw ValidationError(
                "refusing to listen on \(host) without API keys: anyone who reaches that address could run jobs on "
                    + "these GPUs and read every video. Give keys with --api-key-file FILE or REEL_API_KEYS, or "
                    + "listen on 127.0.0.1.")
        }
    }

    /// `--min-free-disk` in bytes (nil: no check), or the default for the model's default size.
    static func minimumFreeDisk(_ text: String?, model: ModelInfo) throws -> Int64? {
        guard let text else {
            let size = model.defaults
            return DiskSpace.oneJobsOutputs(width: size.width, height: size.height, frames: size.frames)
        }
        guard let bytes = DiskSpace.parse(text) else {
            throw ValidationError("--min-free-disk: '\(text)' is not a size; give bytes, or for example 500M or 2G")
        }
        return bytes == 0 ? nil : bytes
    }

    /// The keys from `--api-key-file` and `$REEL_API_KEYS` together, kept as digests only.
    func apiKeys() throws -> APIKeys {
        var texts: [String] = []
        if let apiKeyFile {
            let text: String
            do {
                text = try String(contentsOfFile: apiKeyFile, encoding: .utf8)
            } catch {
                throw ValidationError("cannot read the API key file \(apiKeyFile): \(error.localizedDescription)")
            }
            texts = APIKeys.parse(file: text)
            guard !texts.isEmpty else { throw ValidationError("the API key file \(apiKeyFile) holds no keys") }
        }
        if let value = ProcessInfo.processInfo.environment["REEL_API_KEYS"] {
            texts += APIKeys.parse(environment: value)
        }
        do {
            return try APIKeys(keys: texts)
        } catch {
            throw ValidationError("API keys: \(error.message)")
        }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "reel")

        let engineOptions = try EngineOptions.parse(
            ["--model", model] + comfy.arguments + (dataDir.map { ["--data-dir", $0] } ?? [])
                + (rife.map { ["--rife", $0] } ?? [])
                + (memoryBudget.map { ["--memory-budget", String($0)] } ?? [])
                + (approximate.map { ["--approximate", $0] } ?? []))
        let modelInfo = try engineOptions.resolveModel()
        let dataDirectory = engineOptions.resolvedDataDir
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        let (store, clusterDirectory) = try await openStore(dataDirectory: dataDirectory, logger: logger)
        let plan: PlacementPlan
        let placementInputs: PlacementInputs
        do {
            let requested = try Placement.parse(placement)
            placementInputs = try PlacementInputs(
                devices: devices, model: modelInfo, modelPath: engineOptions.modelArgument,
                memoryBudgetGiB: memoryBudget)
            plan = try placementInputs.plan(requested, queueDepth: try await store.counts()[.queued] ?? 0)
        } catch {
            throw ValidationError("\(error)")
        }
        let slots = plan.slots

        let testFaults = ProcessInfo.processInfo.environment["REEL_TEST_FAULTS"] == "1"
        var configuration = SchedulerConfiguration(
            node: node ?? ProcessInfo.processInfo.hostName, slots: slots, engine: EngineLocation.locate(),
            model: engineOptions.modelArgument, dataDirectory: dataDirectory, maxAttempts: maxAttempts,
            stallTimeout: .seconds(stallTimeout), startupTimeout: .seconds(startupTimeout),
            leaseDuration: .seconds(leaseSeconds), grace: .seconds(grace),
            workerEnvironment: (testFaults ? ["REEL_ENGINE_ALLOW_FAULTS": "1"] : [:])
                .merging(try engineOptions.workerEnvironment()) { _, new in new },
            checkpointEvery: checkpointEvery, memoryBudgetGiB: memoryBudget, memorySaving: plan.memorySaving,
            placementNotes: plan.notes)
        configuration.outputRoot = outputDir
        configuration.minFreeDiskBytes = try Self.minimumFreeDisk(minFreeDisk, model: modelInfo)
        configuration.approximate = engineOptions.approximate
        configuration.imageLimits = ImageLimits(maxBytes: maxImageBytes, maxPixels: maxImagePixels)
        loraLibrary.apply(to: &configuration)
        configuration.affinityWindow = .milliseconds(Int64(affinityWindow * 1000))
        // auto follows the queue where the queue can change its choice (two or more GPUs, a model one GPU holds).
        var follows = false
        if plan.requested == .auto && relayoutAfter > 0 {
            let plans: @Sendable (Int) -> PlacementPlan? = { depth in
                try? placementInputs.plan(.auto, queueDepth: depth)
            }
            if plans(0)?.slots != plans(.max)?.slots {
                configuration.relayout = Relayout(settle: .seconds(relayoutAfter), plan: plans)
                follows = true
            }
        }
        let metrics = ReelMetricsRegistry()
        let scheduler = Scheduler(
            configuration: configuration, store: store, metrics: metrics.schedulerMetrics,
            logger: logger, jobDebug: testFaults ? PromptFaults.debugFields : nil)
        let styles = try styleFile.library(dataDirectory: dataDirectory)
        let limits = GenerationLimits(
            maxFrames: maxFrames, maxPixelsPerFrame: maxPixels, maxSteps: maxSteps,
            maxPromptCharacters: maxPromptCharacters)
        let service = try JobService(
            store: store, scheduler: scheduler, limits: limits, styles: styles,
            maxQueuedPerOwner: maxQueuedPerKey > 0 ? maxQueuedPerKey : nil,
            recipeLoRAs: try loraLibrary.recipeLoRAs())
        let keys = try apiKeys()
        // Connections are capped below the open-file limit, so accepting one never fails for want of a descriptor.
        let descriptors = DescriptorLimit.raiseSoftLimit()
        let safeConnections = DescriptorLimit.connectionCap(descriptors: descriptors)
        if let maxConnections, maxConnections > safeConnections {
            printFlushed(
                "  note: --max-connections \(maxConnections) is more than \(descriptors) open files leave room for; "
                    + "using \(safeConnections)")
        }
        let server = ReelServerApplication(
            configuration: ReelServerConfiguration(
                host: host, port: port, maxBodyBytes: maxBodyBytes, maxBatchBytes: maxBatchBytes,
                apiKeys: keys.isEmpty ? nil : keys, rateLimitPerMinute: rateLimit > 0 ? rateLimit : nil,
                maxBatchRows: maxBatchRows, requestTimeout: .milliseconds(Int64(requestTimeout * 1000)),
                maxConnections: min(maxConnections ?? safeConnections, safeConnections)),
            service: service, metrics: metrics, logger: logger)

        printFlushed("reel serving \(modelInfo.name) (\(modelInfo.architecture.rawValue)) at http://\(host):\(port)")
        printFlushed("slots: " + slots.map { "\($0.id) → \($0.device)" }.joined(separator: ", "))
        plan.lines.forEach(printFlushed)
        if follows {
            let after = String(format: "%g", relayoutAfter)
            printFlushed(
                "  note: the layout follows the queue: replicas once a backlog has waited \(after) s, "
                    + "parallel groups after \(after) s idle (--relayout-after)")
        }
        printFlushed("data: \(dataDirectory)")
        printFlushed(
            "connections: at most \(server.connectionLimit) (open-file limit \(descriptors)), request timeout "
                + String(format: "%g", requestTimeout) + " s")
        printFlushed(
            keys.isEmpty
                ? "api keys: none (open to this machine only)"
                : "api keys: \(keys.keys.count) (ids " + keys.keys.map(\.id).joined(separator: ", ") + ")")
        // The API stops first on shutdown; the scheduler then gives running jobs their grace.
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [
                    .init(service: scheduler), .init(service: server),
                    .init(service: ImageSweeper(service: service, logger: logger)),
                ]
                    + clusterServices(directory: clusterDirectory, scheduler: scheduler, logger: logger),
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            await closeStore(store)
            throw error
        }
        await closeStore(store)
    }
}
