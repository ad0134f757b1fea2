import Foundation

/// Where the engine's Python interpreter and the `reel_engine` package are.
public struct EngineLocation: Sendable, Equatable {
    /// The Python interpreter that has the engine's dependencies.
    public var python: String
    /// The directory that holds the `reel_engine` package, added to PYTHONPATH; nil when it is installed.
    public var packageDirectory: String?
    /// The module a worker runs as (`python -m MODULE`): the engine's `reel_engine.worker`, or the torch-free
    /// `reel_engine.scripted_worker` that tests use for scheduling and fault cases (see docs/worker-protocol.md).
    public var module: String

    public static let workerModule = "reel_engine.worker"

    public init(python: String, packageDirectory: String?, module: String = EngineLocation.workerModule) {
        self.python = python
        self.packageDirectory = packageDirectory
        self.module = module
    }

    /// Finds the engine: `REEL_PYTHON` and `REEL_ENGINE` first, then a checkout or bundle around the current
    /// directory or the `reel` executable (`.venv/bin/python`, `engine/reel_engine`), then `python3` on PATH.
    /// `REEL_ENGINE_MODULE` names another worker module (the scripted worker, for tests).
    public static func locate(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        searchFrom directories: [String] = EngineLocation.defaultSearchDirectories()
    ) -> EngineLocation {
        let fileManager = FileManager.default
        var roots: [URL] = []
        for directory in directories {
            var url = URL(fileURLWithPath: directory).standardizedFileURL
            for _ in 0..<6 {
                roots.append(url)
                let parent = url.deletingLastPathComponent()
                if parent.path == url.path { break }
                url = parent
            }
        }
        var python = environment["REEL_PYTHON"].flatMap { $0.isEmpty ? nil : $0 }
        if python == nil {
            python = roots.lazy.map { $0.appendingPathComponent(".venv/bin/python").path }
                .first { fileManager.isExecutableFile(atPath: $0) }
        }
        var package = environment["REEL_ENGINE"].flatMap { $0.isEmpty ? nil : $0 }
        if package == nil {
            package = roots.lazy.map { $0.appendingPathComponent("engine").path }
                .first { fileManager.fileExists(atPath: $0 + "/reel_engine/__init__.py") }
        }
        let module = environment["REEL_ENGINE_MODULE"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.workerModule
        return EngineLocation(python: python ?? "python3", packageDirectory: package, module: module)
    }

    public static func defaultSearchDirectories() -> [String] {
        var directories = [FileManager.default.currentDirectoryPath]
        let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
        directories.append(executable.deletingLastPathComponent().path)
        return directories
    }
}
