import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ReelCSV
import ReelCore
import ReelStore
import ReelTestSupport
import Testing

@testable import ReelServer

/// Randomised inputs for every parser a client reaches (sizes and numbers, CSV, multipart forms, JSON bodies,
/// chunked bodies on a real socket), from a seeded generator so that a failure repeats. Values are drawn from the
/// edges where parsers break (signs, whitespace, digits of other scripts, sides whose product overflows), which
/// is how the sizes of issue 16 would have been found. Every input must end in a value or a named error: never a
/// trap, a 5xx or a dropped connection.
@Suite struct ParserFuzzTests {
    /// SplitMix64: small, fast, and the same sequence for the same seed on every platform.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }

        mutating func pick<T>(_ choices: [T]) -> T { choices[Int.random(in: 0..<choices.count, using: &self)] }
        mutating func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &self) < percent }
    }

    static let seed: UInt64 = 0x5EED_0016

    /// Numbers at the edges: overflow of a product, of Int, of Int32, off-stride, zero, huge digit runs.
    static let edgeNumbers = [
        "0", "1", "31", "32", "64", "1280", "704", "99999", "1048576", "1048577", "2147483648", "3037000499",
        "3037000512", "4294967296", "9223372036854775807", "9223372036854775808", "18446744073709551616",
        "00000000000000000000064", String(repeating: "9", count: 40),
    ]
    static let decorations = ["", "", "", "+", "-", " ", "\n", "\t", "\r\n", "0", "٣", "１", "e3", ".5", "_"]

    static func number(_ random: inout Generator) -> String {
        var digits = random.chance(70) ? random.pick(edgeNumbers) : String(Int.random(in: 0...99999, using: &random))
        if random.chance(30) { digits = random.pick(decorations) + digits }
        if random.chance(20) { digits += random.pick(decorations) }
        return digits
    }

    static func size(_ random: inout Generator) -> String {
        let separator = random.pick(["x", "x", "X", " x ", "x\n", "×", "xx", ""])
        var text = number(&random) + separator + number(&random)
        if random.chance(10) { text += random.pick(["x64", "\n", " ", "p"]) }
        if random.chance(5) { text = random.pick(["720p", "square", "small", "540p-portrait", "big"]) }
        return text
    }

    @Test func sizesAndNumbersAlwaysEndInASpecOrANamedError() throws {
        var random = Generator(seed: Self.seed)
        let model = try ModelCatalog.resolve("random:ti2v-5b")
        let limits = GenerationLimits.standard
        var accepted = 0
        for _ in 0..<20_000 {
            let size = Self.size(&random)
            let frames = Numerals.wholeNumber(Self.number(&random))
            let seconds = random.chance(30) ? Numerals.decimal(Self.number(&random)) : nil
            let request = GenerationRequest(
                prompt: "a fox", size: size, frames: seconds == nil ? frames : nil, seconds: seconds,
                steps: Numerals.wholeNumber(Self.number(&random)).map { $0 % 1000 },
                fps: random.chance(20) ? Numerals.wholeNumber(Self.number(&random)) : nil)
            do throws(ReelError) {
                let spec = try Validation.resolve(request, model: model, limits: limits, randomSeed: { 1 })
                accepted += 1
                #expect(spec.width > 0 && spec.height > 0 && spec.width * spec.height <= limits.maxPixelsPerFrame)
                #expect(spec.width % 32 == 0 && spec.height % 32 == 0, "\(size)")
                #expect((1...limits.maxFrames).contains(spec.frames))
            } catch {
                #expect(["size", "frames", "seconds", "steps", "fps"].contains(error.field ?? ""), "\(error)")
                #expect(error.message.utf8.count < 400)
            }
            // The grammar: a whole number is what its digits say, nothing else.
            let text = Self.number(&random)
            if let value = Numerals.wholeNumber(text, allowNegative: true) {
                let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(trimmed.allSatisfy { $0.isASCII && ($0.isNumber || $0 == "-") }, "\(text)")
                #expect(Int(trimmed) == value, "\(text)")
            }
        }
        #expect(accepted > 20, "the generator also makes valid requests")
    }

    @Test func csvDocumentsAlwaysParseOrNameTheirRow() {
        var random = Generator(seed: Self.seed &+ 1)
        let pieces = [
            "prompt", "size", "a fox", ",", ",", "\"", "\"\"", "\r\n", "\n", "\r", " ", "é", "一只",
            "\u{0301}", "\u{FEFF}", "64x64", "+3037000512x+3037000512", "1e300", String(repeating: "a", count: 300),
        ]
        for _ in 0..<3_000 {
            var text = random.chance(80) ? "prompt,size,seconds\n" : ""
            for _ in 0..<Int.random(in: 0..<60, using: &random) { text += random.pick(pieces) }
            do {
                let table = try CSVReader.parse(text, maxRows: 20)
                #expect(table.rows.count <= 20)
                #expect(table.rows.allSatisfy { $0.number >= 2 && $0.fields.count <= CSVReader.maxFields })
                for row in table.rows {
                    var fields: [String: String] = [:]
                    for (index, name) in table.header.enumerated() where index < row.fields.count {
                        fields[name] = row.fields[index]
                    }
                    if let parsed = try? SpecFields.row(from: fields) {
                        _ = try? Validation.resolve(parsed.request, model: ModelCatalog.resolve("tiny"))
                    }
                }
            } catch {
                #expect(error.row >= 1 && !error.message.isEmpty)
            }
        }
    }

    @Test func multipartBodiesAlwaysSplitOrAreRefused() {
        var random = Generator(seed: Self.seed &+ 2)
        let boundary = "reel-fuzz"
        let valid = Array(
            ("--\(boundary)\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\na fox\r\n"
                + "--\(boundary)\r\nContent-Disposition: form-data; name=\"size\"; filename=\"a\\\"b\"\r\n"
                + "Content-Type: text/plain\r\n\r\n+3037000512x+3037000512\r\n--\(boundary)--\r\n").utf8)
        let insertions = [
            Array("--\(boundary)".utf8), Array("\r\n".utf8), Array("\r\n\r\n".utf8), [0], [0xFF],
            Array("; name=".utf8), Array("\"".utf8), Array("\\".utf8),
        ]
        for _ in 0..<5_000 {
            var body = valid
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                let position = Int.random(in: 0...body.count, using: &random)
                switch Int.random(in: 0..<4, using: &random) {
                case 0: body.insert(contentsOf: random.pick(insertions), at: position)
                case 1: body = Array(body.prefix(position))
                case 2: if position < body.count { body[position] = UInt8.random(in: 0...255, using: &random) }
                default: if position < body.count { body.remove(at: position) }
                }
            }
            do throws(ReelError) {
                let form = try Multipart(body: body, boundary: boundary)
                #expect(form.parts.count <= Multipart.maxParts)
                let images = ImageStore(
                    directory: FileManager.default.temporaryDirectory.appendingPathComponent("reel-fuzz-images"))
                if let parts = try? VideoSubmission.submission(form: form.parts, serverModel: "tiny", images: images) {
                    _ = parts
                }
            } catch {
                #expect(!error.message.isEmpty)
            }
        }
    }

    @Test func jsonBodiesNeverGetA5xx() async throws {
        let server = try TestServer()
        let values = [
            #""a fox""#, "5", "-1", "1e308", "3037000512", #""+3037000512x+3037000512""#, "null", "true",
            "[]", "{}", #""\u0301""#, #""64x64""#, "0.5", "9223372036854775808",
        ]
        let keys = [
            "prompt", "size", "frames", "seconds", "steps", "seed", "style", "priority", "fps", "guidance",
            "png_frames", "interpolate", "model", "negative_prompt", "x",
        ]
        try await server.test { client in
            var random = Generator(seed: Self.seed &+ 3)
            for _ in 0..<600 {
                var fields: [String] = []
                for _ in 0..<Int.random(in: 0..<6, using: &random) {
                    fields.append("\"\(random.pick(keys))\": \(random.pick(values))")
                }
                var body = "{" + fields.joined(separator: ", ") + "}"
                if random.chance(10) { body = String(body.prefix(Int.random(in: 0...body.count, using: &random))) }
                let uri = random.pick(["/v1/jobs", "/v1/videos", "/v1/batches"])
                let json = uri == "/v1/batches" && random.chance(70) ? #"{"jobs": [\#(body)]}"# : body
                let response = try await client.execute(
                    uri: uri, method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: json)
                )
                #expect(response.status.code < 500, "\(uri) \(json): \(String(buffer: response.body))")
                #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
            }
        }
    }

    /// Chunked bodies with random chunk sizes, extensions, lengths and ends, on a real socket: each gets a whole
    /// answer, never a 5xx, and the server answers the next client.
    @Test func chunkedBodiesAlwaysGetAnAnswer() async throws {
        let server = try TestServer()
        try await server.test(.live) { client in
            var random = Generator(seed: Self.seed &+ 4)
            let port = try #require(client.port)
            let payload = Array(#"{"prompt": "a fox", "size": "64x64", "frames": 5}"#.utf8)
            for _ in 0..<150 {
                var body: [UInt8] = []
                var offset = 0
                while offset < payload.count {
                    let length = min(payload.count - offset, Int.random(in: 1...20, using: &random))
                    var sizeLine = String(length, radix: 16)
                    if random.chance(8) {
                        sizeLine = random.pick([
                            "zz", "-5", "ffffffffffffffffffffff", "", " 5", "5;ext=1", "5;\u{1}",
                            String(length + 3, radix: 16), "0x5", "+5",
                        ])
                    }
                    body += Array((sizeLine + "\r\n").utf8) + payload[offset..<offset + length]
                    body += random.chance(5) ? Array("\n".utf8) : Array("\r\n".utf8)
                    offset += length
                }
                body += Array(random.pick(["0\r\n\r\n", "0\r\n\r\n", "0\r\nX-Trailer: 1\r\n\r\n", "0\r\n", ""]).utf8)
                if random.chance(10) { body = Array(body.prefix(Int.random(in: 0...body.count, using: &random))) }
                let connection = try RawHTTPConnection(port: port)
                try await connection.send(
                    "POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                        + "Transfer-Encoding: chunked\r\n\r\n")
                try await connection.send(body)
                connection.shutdownWrite()
                let response = try await connection.response()
                #expect([201, 400].contains(response.status), "\(String(decoding: body, as: UTF8.self)): \(response)")
                #expect(response.apiError != nil || response.status == 201, "\(response)")
            }
            let check = try RawHTTPConnection(port: port)
            try await check.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            #expect(try await check.response().status == 200)
        }
    }
}
