import Foundation
import ReelTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The `reel` command against client input that used to crash it or starve it; no worker is started.
@Suite struct ClientInputCLITests {
    /// A CSV row whose size overflowed the pixel count ended `reel batch` with a trap (issue 16); each such row is
    /// now reported by row and column, like any other bad row.
    @Test func batchReportsOverflowingSizesByRowInsteadOfTrapping() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            let csv =
                "prompt,size,seconds\n"
                + "fox,+3037000512x+3037000512,\n"
                + "\"fox\",\"3037000512\nx3037000512\",\n"
                + "fox,3037000512x3037000512,\n"
                + "fox,64x64,1e300\n"
            try csv.write(to: directory.appendingPathComponent("rows.csv"), atomically: true, encoding: .utf8)
            let run = try TestSupport.runReel(
                ["batch", "rows.csv", "--model", "tiny", "--device", "cpu", "--out", "out"], in: directory)
            #expect(run.status == 1, "exit status \(run.status): \(run.stderr)")
            for (row, column) in [(2, "size"), (3, "size"), (4, "size"), (5, "seconds")] {
                #expect(run.stderr.contains("row \(row), column \(column):"), "\(run.stderr)")
            }
            #expect(run.stderr.contains("0 of 4 rows are valid"), "\(run.stderr)")
        }
    }

    /// With 1,024 descriptors, 1,100 idle connections made /healthz time out (issue 16). Here `reel serve` gets
    /// only 256 (soft and hard, so it cannot raise them) and 400 idle connections: it caps its connections under
    /// the limit, closes the longest idle ones, and answers the health check at once.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit")))
    func serveAnswersHealthChecksWhenIdleConnectionsExceedItsDescriptors() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let port = ServerProcess.freePort()
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/prlimit")
            process.arguments = [
                "--nofile=256:256", TestSupport.reelExecutable.path, "serve", "--port", String(port), "--data-dir",
                directory.path, "--devices", "cpu", "--model", "tiny",
            ]
            // No worker ever starts: this is about the HTTP side alone.
            process.environment = ProcessInfo.processInfo.environment.merging(["REEL_PYTHON": "/bin/false"]) { $1 }
            let log = directory.appendingPathComponent("serve.log")
            FileManager.default.createFile(atPath: log.path, contents: nil)
            process.standardOutput = try FileHandle(forWritingTo: log)
            process.standardError = process.standardOutput
            try process.run()
            defer {
                process.terminate()
                process.waitUntilExit()
            }
            let client = RawSocket.self
            var up = false
            for _ in 0..<300 where !up {
                up = (try? client.get(port: port, path: "/healthz", timeout: 1)) == 200
                if !up { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(up, "reel serve did not answer: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
            let idle = try (0..<400).map { _ in try RawSocket(port: port) }
            defer { idle.forEach { $0.close() } }
            for _ in 0..<3 {
                let started = ContinuousClock.now
                #expect(try client.get(port: port, path: "/healthz", timeout: 5) == 200)
                #expect(ContinuousClock.now - started < .seconds(1))
            }
            #expect(process.isRunning)
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            #expect(text.contains("connections: at most 96 (open-file limit 256)"), "\(text)")
        }
    }
}

/// A blocking TCP client socket on loopback.
final class RawSocket {
    let socket: Int32

    init(port: Int) throws {
        socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard socket >= 0, connected == 0 else {
            Glibc.close(socket)
            throw CocoaError(.fileReadUnknown)
        }
    }

    func close() { Glibc.close(socket) }

    /// The status of `GET path` on a new connection, reading for at most `timeout` seconds.
    static func get(port: Int, path: String, timeout: Int) throws -> Int? {
        let connection = try RawSocket(port: port)
        defer { connection.close() }
        var limit = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(connection.socket, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        let request = Array("GET \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { Glibc.send(connection.socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(connection.socket, &buffer, buffer.count, 0)
        guard count > 12 else { return nil }
        return Int(String(decoding: buffer[9..<12], as: UTF8.self))
    }
}
