import Foundation

/// Where the engine's Python interpreter and the `reel_engine` package are.
public struct EngineLocation: Sendable, Equatable {
    /// The Python interpreter that has the engine's dependencies.
    public var python: String
    /// The directory that holds the `reel_engine` package, added to PYTHONPATH; nil when it is installed.
    public var packageDirectory: String?

    public init(python: String, packageDirectory: String?) {
        self.python = python
        self.packageDirectory = packageDirectory
    }

    /// Finds the engine: `REEL_PYTHON` and `REEL_ENGINE` first, then a checkout or bundle around the current
    /// directory or the `reel` executable (`.venv/bin/python`, `engine/reel_engine`), then `python3` on PATH.
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
        return EngineLocation(python: python ?? "python3", packageDirectory: package)
    }

    public static func defaultSearchDirectories() -> [String] {
        var directories = [FileManager.default.currentDirectoryPath]
        let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
        directories.append(executable.deletingLastPathComponent().path)
        return directories
    }
}
