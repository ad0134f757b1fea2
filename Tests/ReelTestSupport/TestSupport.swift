import Foundation
import Logging
import ReelWorker

/// Paths and helpers the integration tests share: the checkout, the engine, the built `reel`, scratch folders.
public enum TestSupport {
    /// The package root, found from this file's location.
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The engine of this checkout: `.venv/bin/python` (or REEL_PYTHON) with `engine/` on PYTHONPATH.
    public static var engine: EngineLocation {
        var engine = EngineLocation.locate(searchFrom: [packageRoot.path])
        engine.module = EngineLocation.workerModule
        return engine
    }

    /// Which worker a test runs: the real engine with tiny models, or the scripted worker (the same protocol code,
    /// no torch, real MP4s; see docs/worker-protocol.md) for scheduling and fault cases.
    public enum Worker: Sendable, CustomStringConvertible {
        case real, scripted

        public var module: String {
            switch self {
            case .real: EngineLocation.workerModule
            case .scripted: "reel_engine.scripted_worker"
            }
        }

        public var description: String { self == .real ? "real worker" : "scripted worker" }
    }

    /// The worker of the soak tests (many jobs, random kills): the scripted one, so `make test` runs them in about a
    /// minute each; the real engine when REEL_SOAK=1 (`make soak`).
    public static var soakWorker: Worker {
        ProcessInfo.processInfo.environment["REEL_SOAK"] == "1" ? .real : .scripted
    }

    /// The engine of this checkout running `worker`.
    public static func engine(_ worker: Worker) -> EngineLocation {
        var engine = self.engine
        engine.module = worker.module
        return engine
    }

    /// One data directory for the whole test run, so the tiny models are created once and then reused.
    public static let dataDirectory: String = {
        let url = packageRoot.appendingPathComponent(".build/test-data")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }()

    /// The tiny models every test shares, made once (`<dataDirectory>/models`); data directories of their own link
    /// to it. Created here, so a link to it never dangles.
    public static let modelsDirectory: String = {
        let path = dataDirectory + "/models"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()

    /// The `reel` executable built beside the test bundle.
    public static var reelExecutable: URL {
        let testBundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let candidates = [
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("reel"),
            testBundle.appendingPathComponent("reel"),
            Bundle.main.bundleURL.appendingPathComponent("reel"),
            packageRoot.appendingPathComponent(".build/debug/reel"),
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates.last!
    }

    /// A fresh directory that is removed when `body` ends.
    public static func withTemporaryDirectory<R>(_ body: (URL) async throws -> R) async throws -> R {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("reel-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: url) }
        return try await body(url)
    }

    /// A fresh directory that is removed when `body` ends, for synchronous tests.
    public static func withTemporaryDirectorySync<R>(_ body: (URL) throws -> R) throws -> R {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("reel-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: url) }
        return try body(url)
    }

    public static func launch(model: String = "tiny", faults: Bool = false, worker: Worker = .real) -> WorkerLaunch {
        WorkerLaunch(
            engine: engine(worker), device: "cpu", model: model, dataDirectory: dataDirectory,
            environment: faults ? ["REEL_ENGINE_ALLOW_FAULTS": "1"] : [:])
    }

    public static var logger: Logger {
        var logger = Logger(label: "reel-test")
        logger.logLevel = .warning
        return logger
    }

    /// What PyAV reads back from a video: the check a user's player would make.
    public struct VideoProbe: Decodable, Sendable {
        public var frames: Int
        public var width: Int
        public var height: Int
        public var codec: String
        public var pixelFormat: String
        public var fps: Double

        enum CodingKeys: String, CodingKey {
            case frames, width, height, codec, fps
            case pixelFormat = "pix_fmt"
        }
    }

    /// Decodes every frame of a video with PyAV (the engine's Python) and reports what it found.
    public static func probeVideo(_ path: String) throws -> VideoProbe {
        let script = """
            import av, json, sys
            with av.open(sys.argv[1]) as c:
                s = c.streams.video[0]
                frames = list(c.decode(s))
                print(json.dumps({"frames": len(frames), "width": frames[0].width, "height": frames[0].height,
                                  "codec": s.codec_context.name, "pix_fmt": frames[0].format.name,
                                  "fps": float(s.average_rate)}))
            """
        let output = try runCapturing(engine.python, ["-c", script, path])
        return try JSONDecoder().decode(VideoProbe.self, from: Data(output.utf8))
    }

    /// Runs a program to completion and returns its stdout; throws when it fails.
    public static func runCapturing(_ program: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "\(program) failed"])
        }
        return String(decoding: data, as: UTF8.self)
    }
}

extension TestSupport {
    /// What a finished `reel` command printed and how it ended.
    public struct Run: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// Runs the built `reel` with this checkout's engine and the shared test data directory.
    public static func runReel(
        _ arguments: [String], in directory: URL, environment extra: [String: String] = [:], worker: Worker = .real
    ) throws -> Run {
        var environment = ProcessInfo.processInfo.environment
        environment["REEL_DATA_DIR"] = dataDirectory
        environment["REEL_PYTHON"] = engine.python
        environment["REEL_ENGINE"] = engine.packageDirectory
        environment["REEL_ENGINE_MODULE"] = worker.module
        for (key, value) in extra { environment[key] = value }
        return try run(reelExecutable.path, arguments, in: directory, environment: environment)
    }

    /// Runs a program to completion, capturing both streams whatever its exit status.
    public static func run(
        _ program: String, _ arguments: [String], in directory: URL? = nil, environment: [String: String]? = nil
    ) throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        if let environment { process.environment = environment }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes while the child runs, so a chatty child cannot block on a full pipe.
        nonisolated(unsafe) var errData = Data()
        let errReader = Thread { errData = err.fileHandleForReading.readDataToEndOfFile() }
        errReader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while !errReader.isFinished { Thread.sleep(forTimeInterval: 0.01) }
        return Run(
            status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self))
    }
}
