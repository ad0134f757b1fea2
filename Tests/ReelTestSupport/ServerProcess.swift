import Foundation
import ReelClient

#if canImport(Glibc)
    import Glibc
#endif

/// A real `reel serve` process on a loopback port, with its own data directory, for end-to-end tests.
public final class ServerProcess: @unchecked Sendable {
    public let port: Int
    public let dataDirectory: URL
    public let arguments: [String]
    public private(set) var process: Process
    private let logURL: URL

    /// Starts `reel serve` with CPU workers (scripted unless `worker` says real, tiny models); test faults (prompt
    /// markers) are enabled.
    public let worker: TestSupport.Worker

    public init(
        devices: String = "cpu", dataDirectory: URL, extraArguments: [String] = [],
        worker: TestSupport.Worker = .scripted
    ) throws {
        self.worker = worker
        self.dataDirectory = dataDirectory
        port = Self.freePort()
        try? FileManager.default.createDirectory(at: dataDirectory, withIntermediateDirectories: true)
        // The tiny models are made once for the whole test run.
        try? FileManager.default.createSymbolicLink(
            atPath: dataDirectory.appendingPathComponent("models").path,
            withDestinationPath: TestSupport.modelsDirectory)
        arguments =
            [
                "serve", "--port", String(port), "--data-dir", dataDirectory.path, "--devices", devices, "--model",
                "tiny",
                "--node", "test-node", "--log-level", "debug",
            ] + extraArguments
        logURL = dataDirectory.appendingPathComponent("server-\(UUID().uuidString.prefix(6)).log")
        process = Process()
        try launch()
    }

    /// A loopback port nothing listens on or connects from now, below Linux's ephemeral range (32768–60999): a
    /// random port in that range can be the local port of some client connection of a test running beside this one
    /// (the API fuzzer, the ComfyUI clients), and `reel serve` would then fail to bind it.
    public static func freePort() -> Int {
        for _ in 0..<200 {
            let port = Int.random(in: 20000..<32768)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { return port }
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            if bound == 0 { return port }
        }
        return Int.random(in: 20000..<32768)
    }

    private func launch() throws {
        let process = Process()
        process.executableURL = TestSupport.reelExecutable
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["REEL_PYTHON"] = TestSupport.engine.python
        environment["REEL_ENGINE"] = TestSupport.engine.packageDirectory
        environment["REEL_TEST_FAULTS"] = "1"
        environment["REEL_ENGINE_MODULE"] = worker.module
        process.environment = environment
        FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let log = try FileHandle(forWritingTo: logURL)
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        self.process = process
    }

    /// Starts the server again on the same port and data directory (after it was killed or stopped).
    public func restart() throws {
        if process.isRunning { throw CocoaError(.executableLoad) }
        try launch()
    }

    public var client: ReelAPIClient { ReelAPIClient(baseURL: "http://127.0.0.1:\(port)") }

    /// Waits until `/readyz` answers 200: at least one worker is ready (asked with `apiKey` behind API keys).
    public func waitUntilReady(timeout: Duration = .seconds(120), apiKey: String? = nil) async throws {
        let deadline = ContinuousClock.now + timeout
        var client = client
        client.apiKey = apiKey
        while ContinuousClock.now < deadline {
            if (try? await client.send(.GET, "/readyz")) != nil { return }
            guard process.isRunning else { throw ServerProcessError("the server exited:\n\(log)") }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ServerProcessError("the server never became ready:\n\(log)")
    }

    public func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits for the server to exit and returns its status.
    public func waitForExit(timeout: Duration = .seconds(60)) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            guard ContinuousClock.now < deadline else { throw ServerProcessError("the server did not exit") }
            try await Task.sleep(for: .milliseconds(50))
        }
        return process.terminationStatus
    }

    public var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    public func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit { stop() }
}

public struct ServerProcessError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = String(description.suffix(4000)) }
}
