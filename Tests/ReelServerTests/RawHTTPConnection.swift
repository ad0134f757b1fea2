import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A plain TCP connection to a local server that sends whatever bytes a test gives it (a chunked body that
/// never ends, a stream with headers) and reads what comes back, without a client library in between.
///
/// It never blocks a thread: the server under test answers on the same process's few cooperative threads, so
/// waiting is done with `Task.sleep` between non-blocking reads and writes.
final class RawHTTPConnection {
    private let socket: Int32
    private(set) var received: [UInt8] = []
    /// The server closed (or reset) the connection.
    private(set) var isClosedByPeer = false

    init(port: Int) throws {
        socket = try connectToLoopback(port: port)
    }

    deinit { Glibc.close(socket) }

    var text: String { String(decoding: received, as: UTF8.self) }

    /// Sends all of `bytes`, unless the server answers (or closes) first; returns whether all were sent.
    @discardableResult
    func send(_ bytes: [UInt8]) async throws -> Bool {
        var offset = 0
        while offset < bytes.count {
            if readAvailable() { return false }
            let sent = bytes[offset...].withUnsafeBytes {
                Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if sent > 0 {
                offset += sent
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                // The server is not reading: wait for its answer or for room.
                try await Task.sleep(for: .milliseconds(5))
            } else {
                return false
            }
        }
        return true
    }

    func send(_ text: String) async throws { try await send(Array(text.utf8)) }

    /// Reads whatever has arrived, without waiting; true when anything did (or the server closed).
    @discardableResult
    func readAvailable() -> Bool {
        var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, 0) > 0 else { return false }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = recv(socket, &buffer, buffer.count, 0)
        if count > 0 {
            received.append(contentsOf: buffer[0..<count])
        } else {
            isClosedByPeer = true
        }
        return true
    }

    /// Closes the sending side (a FIN), as a client does that has sent all it will.
    func shutdownWrite() {
        Glibc.shutdown(socket, Int32(SHUT_WR))
    }

    /// Reads until the text received contains `marker`; throws after `timeout`.
    func waitFor(_ marker: String, timeout: Duration = .seconds(10)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while !text.contains(marker) {
            guard ContinuousClock.now < deadline else {
                throw TestFailure("no '\(marker)' within \(timeout); got: \(text)")
            }
            if !readAvailable() { try await Task.sleep(for: .milliseconds(10)) }
        }
        return text
    }
}

/// A blocking TCP socket connected to 127.0.0.1:`port`; the caller closes it.
func connectToLoopback(port: Int) throws -> Int32 {
    let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard socket >= 0 else { throw TestFailure("socket() failed") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
    let connected = withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else {
        Glibc.close(socket)
        throw TestFailure("connecting to port \(port) failed")
    }
    return socket
}
