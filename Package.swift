// swift-tools-version: 6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "reel",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "reel", targets: ["ReelCLI"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.5.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.9.0"..<"6.0.0"),
    ],
    targets: [
        // Domain values: models, generation specs, validation, errors. No I/O beyond reading a model's configs.
        .target(name: "ReelCore", swiftSettings: swiftSettings),
        // The worker protocol as a pure codec: typed requests and events, NDJSON framing.
        .target(name: "ReelWorkerProtocol", swiftSettings: swiftSettings),
        // The REST API's wire types: the Codable shapes the server encodes and the client decodes, keys as served.
        .target(name: "ReelAPI", dependencies: ["ReelCore"], swiftSettings: swiftSettings),
        // RFC 4180 CSV reading.
        .target(name: "ReelCSV", swiftSettings: swiftSettings),
        // The one validation of a batch (CSV text or rows → whole-file error or per-row verdicts), for the CLI and
        // the server alike. No I/O.
        .target(name: "ReelBatch", dependencies: ["ReelCore", "ReelCSV"], swiftSettings: swiftSettings),
        // Starting and talking to one engine worker process.
        .target(
            name: "ReelWorker",
            dependencies: [
                "ReelCore", "ReelWorkerProtocol",
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Durable jobs with leases: the store protocol, SQLite (GRDB), PostgreSQL and in-memory implementations.
        .target(
            name: "ReelStore",
            dependencies: [
                "ReelCore", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Slots, workers and jobs: claims jobs under leases, supervises worker processes, publishes events.
        .target(
            name: "ReelScheduler",
            dependencies: [
                "ReelCore", "ReelStore", "ReelWorker", "ReelWorkerProtocol",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The HTTP API (Hummingbird): jobs, events, workers, health and metrics.
        .target(
            name: "ReelServer",
            dependencies: [
                "ReelAPI", "ReelCore", "ReelStore", "ReelScheduler", "ReelCSV", "ReelBatch",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // A typed client of the REST API, for the CLI and tests.
        .target(
            name: "ReelClient",
            dependencies: [
                "ReelAPI", "ReelCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: swiftSettings
        ),
        // The `reel` command.
        .executableTarget(
            name: "ReelCLI",
            dependencies: [
                "ReelAPI", "ReelCore", "ReelWorkerProtocol", "ReelWorker", "ReelCSV", "ReelBatch", "ReelStore",
                "ReelScheduler", "ReelServer", "ReelClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // Helpers shared by the test targets: locating the engine, temporary directories, waiting on events.
        .target(
            name: "ReelTestSupport",
            dependencies: [
                "ReelWorker", "ReelCore", "ReelClient", .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            path: "Tests/ReelTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ReelCoreTests", dependencies: ["ReelCore", "ReelTestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "ReelAPITests", dependencies: ["ReelAPI", "ReelCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "ReelWorkerProtocolTests", dependencies: ["ReelWorkerProtocol"], swiftSettings: swiftSettings),
        .testTarget(name: "ReelCSVTests", dependencies: ["ReelCSV"], swiftSettings: swiftSettings),
        .testTarget(
            name: "ReelBatchTests", dependencies: ["ReelBatch", "ReelCore", "ReelTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "ReelStoreTests",
            dependencies: ["ReelStore", "ReelTestSupport", .product(name: "PostgresNIO", package: "postgres-nio")],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "ReelSchedulerTests",
            dependencies: [
                "ReelScheduler", "ReelStore", "ReelTestSupport",
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ReelServerTests",
            dependencies: [
                "ReelAPI", "ReelClient", "ReelServer", "ReelScheduler", "ReelStore", "ReelTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ReelWorkerTests",
            dependencies: ["ReelWorker", "ReelWorkerProtocol", "ReelTestSupport"],
            swiftSettings: swiftSettings
        ),
        // Several `reel serve` nodes on one PostgreSQL database.
        .testTarget(
            name: "ReelClusterTests",
            dependencies: [
                "ReelCLI", "ReelTestSupport", "ReelAPI", "ReelClient", "ReelWorkerProtocol", "ReelStore", "ReelCore",
                "ReelCSV",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ReelCLITests",
            dependencies: [
                "ReelCLI", "ReelTestSupport", "ReelAPI", "ReelClient", "ReelWorkerProtocol", "ReelCore", "ReelCSV",
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
