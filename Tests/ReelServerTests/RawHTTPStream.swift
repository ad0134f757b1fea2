import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A plain TCP connection that sends one GET and reads the response as it arrives: what an SSE client sees,
/// byte for byte, without a client library buffering the stream until it ends.
final class RawHTTPStream: Sendable {
    private let socket: Int32
    private let received = Mutex<[UInt8]>([])

    init(port: Int, path: String) throws {
        socket = try connectToLoopback(port: port)
        let request = Array("GET \(path) HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n".utf8)
        let sent = request.withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == request.count else { throw TestFailure("sending the request failed") }
    }

    /// Everything received so far, as text.
    var text: String { received.withLock { String(decoding: $0, as: UTF8.self) } }

    /// Reads until the text received contains `marker`, on a thread of its own (the reads block); throws after
    /// `timeout` or when the server closes the connection first.
    func waitFor(_ marker: String, timeout: Duration = .seconds(10)) async throws -> String {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<String, any Error>) in
            Thread {
                continuation.resume(with: Result { try self.blockingWait(for: marker, timeout: timeout) })
            }.start()
        }
    }

    private func blockingWait(for marker: String, timeout: Duration) throws -> String {
        let deadline = ContinuousClock.now + timeout
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !text.contains(marker) {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { throw TestFailure("no '\(marker)' within \(timeout); got: \(text)") }
            var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            let milliseconds = Int32(
                left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)
            guard poll(&descriptor, 1, max(1, milliseconds)) > 0 else { continue }
            let count = recv(socket, &buffer, buffer.count, 0)
            guard count > 0 else { throw TestFailure("the server closed the stream before '\(marker)'; got: \(text)") }
            received.withLock { $0.append(contentsOf: buffer[0..<count]) }
        }
        return text
    }

    func close() {
        Glibc.shutdown(socket, Int32(SHUT_RDWR))
        Glibc.close(socket)
    }
}
