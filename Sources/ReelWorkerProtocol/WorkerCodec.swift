import Foundation

/// Encodes requests and decodes events, one JSON object per line.
public struct WorkerCodec: Sendable {
    /// The protocol version this side speaks (docs/worker-protocol.md).
    public static let protocolVersion = 1

    public init() {}

    /// One request as a line, `\n` included. JSON escapes newlines inside strings, so the line is never split.
    public func encodeLine(_ request: WorkerRequest) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(request)
        data.append(0x0A)
        return data
    }

    public func decodeEvent(_ line: some StringProtocol) throws -> WorkerEvent {
        try JSONDecoder().decode(WorkerEvent.self, from: Data(line.utf8))
    }

    public func decodeRequest(_ line: some StringProtocol) throws -> WorkerRequest {
        try JSONDecoder().decode(WorkerRequest.self, from: Data(line.utf8))
    }

    public func encodeEventLine(_ event: WorkerEvent) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(event)
        data.append(0x0A)
        return data
    }
}

/// Splits a byte stream into lines on "\n" only, keeping any partial line until its end arrives.
public struct LineSplitter: Sendable {
    private var pending: [UInt8] = []
    /// A line longer than this is cut off and reported, so a runaway worker cannot exhaust memory.
    public let maxLineBytes: Int

    public init(maxLineBytes: Int = 16 << 20) { self.maxLineBytes = maxLineBytes }

    /// Feeds bytes and returns the complete lines they finish, without their "\n".
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [String] {
        var lines: [String] = []
        for byte in bytes {
            if byte == 0x0A {
                lines.append(String(decoding: pending, as: UTF8.self))
                pending.removeAll(keepingCapacity: true)
            } else if pending.count < maxLineBytes {
                pending.append(byte)
            }
        }
        return lines
    }

    /// The unterminated rest, when the stream ends.
    public mutating func finish() -> String? {
        defer { pending.removeAll() }
        return pending.isEmpty ? nil : String(decoding: pending, as: UTF8.self)
    }
}
