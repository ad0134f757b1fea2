import Hummingbird
import Logging
import ReelStore
import ServiceLifecycle

/// Reel's HTTP API as a `Service`: run it in a `ServiceGroup` after the `Scheduler`, so that on shutdown the API
/// stops first (ending open event streams) and the scheduler then drains its workers.
///
/// ```swift
/// let metrics = ReelMetricsRegistry()
/// let scheduler = Scheduler(configuration: …, store: store, metrics: metrics.schedulerMetrics,
///                           logger: logger)
/// let service = try JobService(store: store, scheduler: scheduler)
/// let server = ReelServerApplication(configuration: .init(port: 8080), service: service, metrics: metrics,
///                                    logger: logger)
/// try await ServiceGroup(services: [scheduler, server], gracefulShutdownSignals: [.sigterm, .sigint],
///                        logger: logger).run()
/// ```
public struct ReelServerApplication: Service {
    public let configuration: ReelServerConfiguration
    /// The Hummingbird application; tests drive it with `application.test(.router)` or `.live`.
    public let application: Application<RouterResponder<BasicRequestContext>>
    /// Every open connection, kept under the descriptor limit.
    let connections: ConnectionRegistry
    /// ComfyUI's API: its queue is Reel's, its WebSocket messages come from the job store's updates.
    let comfy: ComfyService

    public init(
        configuration: ReelServerConfiguration = ReelServerConfiguration(), service: JobService,
        metrics: ReelMetricsRegistry, logger: Logger
    ) {
        self.configuration = configuration
        let comfy = ComfyService(jobs: service)
        self.comfy = comfy
        let router = Self.makeRouter(service: service, metrics: metrics, configuration: configuration, comfy: comfy)
        connections = ConnectionRegistry(
            limit: configuration.maxConnections ?? DescriptorLimit.connectionCap(descriptors: DescriptorLimit.current))
        let webSocket = ComfyWebSocket.Context(
            hub: comfy.hub, keys: configuration.apiKeys,
            queueRemaining: { owner in
                (try? await Caller.$current.withValue(Caller(owner: owner)) { try await comfy.queueRemaining() }) ?? 0
            })
        var application = Application(
            router: router,
            server: ReelHTTPChannel.builder(
                registry: connections, requestTimeout: configuration.requestTimeout, webSocket: webSocket),
            configuration: ApplicationConfiguration(
                address: .hostname(configuration.host, port: configuration.port), serverName: "reel"),
            logger: logger)
        let legacy = LegacyBatchManifests(dataDirectory: service.scheduler.configuration.dataDirectory)
        application.beforeServerStarts { [store = service.store] in
            // A failure here only leaves the old batches unlisted until the next start; the server still serves.
            do {
                let added = try await legacy.importAll(into: store, logger: logger)
                if added > 0 {
                    logger.info("imported \(added) batch manifests from \(legacy.directory.path) into the job store")
                }
            } catch {
                logger.warning(
                    "could not import the batch manifests of \(legacy.directory.path): \(error); trying at next start")
            }
        }
        self.application = application
    }

    /// The most connections this server keeps open at once.
    public var connectionLimit: Int { connections.limit }

    public func run() async throws {
        // The WebSocket messages follow the store's updates for as long as the server runs.
        let hub = Task { [comfy] in await comfy.hub.run(service: comfy) }
        defer { hub.cancel() }
        try await application.run()
    }

    /// Every route of the API, behind the middleware that gives every error the API's JSON shape (OpenAI's on
    /// `/v1/videos`), and, when the configuration has keys, requires one and limits its requests.
    public static func makeRouter(
        service: JobService, metrics: ReelMetricsRegistry,
        configuration: ReelServerConfiguration = ReelServerConfiguration()
    ) -> Router<BasicRequestContext> {
        makeRouter(service: service, metrics: metrics, configuration: configuration, comfy: ComfyService(jobs: service))
    }

    static func makeRouter(
        service: JobService, metrics: ReelMetricsRegistry, configuration: ReelServerConfiguration,
        comfy: ComfyService
    ) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: ErrorMiddleware<BasicRequestContext>())
        router.add(middleware: OpenAIErrorMiddleware<BasicRequestContext>())
        router.add(middleware: URITextMiddleware<BasicRequestContext>())
        router.add(middleware: RequestWorkMiddleware<BasicRequestContext>())
        let rateLimiter = configuration.rateLimitPerMinute.map {
            RateLimiter(perMinute: $0, clock: configuration.rateLimitClock)
        }
        router.add(
            middleware: AuthMiddleware<BasicRequestContext>(keys: configuration.apiKeys, rateLimiter: rateLimiter))
        JobRoutes(service: service, configuration: configuration).register(on: router)
        JobFileRoutes(service: service).register(on: router)
        ImageRoutes(service: service).register(on: router)
        OpenAIVideoRoutes(service: service, configuration: configuration).register(on: router)
        StyleRoutes(styles: service.styles).register(on: router)
        LoRARoutes(jobs: service).register(on: router)
        BatchRoutes(
            batches: BatchService(jobs: service, maxRows: configuration.maxBatchRows),
            maxBodyBytes: configuration.maxBatchBytes
        ).register(on: router)
        EventRoutes(service: service, configuration: configuration).register(on: router)
        SystemRoutes(service: service, metrics: metrics).register(on: router)
        ComfyRoutes(comfy: comfy, configuration: configuration).register(on: router)
        WebRoutes().register(on: router)
        return router
    }
}
