/// Runs of combining marks (Unicode "non-starters", canonical combining class above 0) in client text.
///
/// A letter followed by hundreds of thousands of alternating combining marks is one `Character`, and normalising,
/// hashing or comparing it takes time that grows with the square of the run: Swift's `String` hashes and compares
/// by canonical equivalence, so a 40 000-mark key in a JSON object took two seconds to hash. No real text needs
/// such runs; Unicode's stream-safe format (UAX #15) allows 30 non-starters in a row, and so does Reel. Text with a
/// longer run is refused before any of it becomes a `String` key, a dictionary lookup or a normalised prompt.
public enum CombiningMarks {
    /// The longest run of combining marks accepted after one character.
    public static let maxRun = 30

    /// How text arrives: as plain UTF-8, as JSON (whose `\uXXXX` escapes are scalars too), or percent-encoded (a
    /// URL's query, a form body, where `%CC%81` is a scalar).
    public enum Encoding: Sendable {
        case utf8, json, percentEncoded
    }

    /// The longest run of non-starters in `bytes`, stopping early once one exceeds `maxRun`. Linear in the input.
    public static func longestRun(in bytes: some Sequence<UInt8>, encoding: Encoding) -> Int {
        if let run = bytes.withContiguousStorageIfAvailable({ longestRun(inBuffer: $0, encoding: encoding) }) {
            return run
        }
        return Array(bytes).withUnsafeBufferPointer { longestRun(inBuffer: $0, encoding: encoding) }
    }

    /// The scan over contiguous bytes: plain ASCII, by far the most of any body, is skipped in a tight loop.
    private static func longestRun(inBuffer bytes: UnsafeBufferPointer<UInt8>, encoding: Encoding) -> Int {
        var scanner = Scanner(encoding: encoding)
        let special: UInt8 =
            switch encoding {
            case .utf8: 0x80
            case .json: UInt8(ascii: "\\")
            case .percentEncoded: UInt8(ascii: "%")
            }
        var index = 0
        let count = bytes.count
        while index < count {
            if scanner.isIdle {
                // Until a non-ASCII byte or an escape, no scalar can be a combining mark.
                var ascii = index
                while ascii < count, bytes[ascii] < 0x80, bytes[ascii] != special { ascii += 1 }
                if ascii > index {
                    scanner.sawStarter()
                    index = ascii
                    continue
                }
            }
            scanner.feed(bytes[index])
            if scanner.longest > maxRun { break }
            index += 1
        }
        return scanner.longest
    }

    /// The longest run of non-starters in `text`.
    public static func longestRun(in text: some StringProtocol) -> Int {
        var run = 0
        var longest = 0
        for scalar in text.unicodeScalars {
            run = isNonStarter(scalar) ? run + 1 : 0
            longest = max(longest, run)
            if longest > maxRun { break }
        }
        return longest
    }

    /// The error for text whose longest run is over the limit, naming `field`.
    public static func error(field: String, run: Int) -> ReelError {
        .invalid(
            field,
            "\(field) has a run of more than \(maxRun) combining marks after one character; no text needs that many "
                + "(Unicode's stream-safe format allows \(maxRun)): remove them")
    }

    /// Throws `error(field:run:)` when `text` has a run longer than `maxRun`.
    public static func check(_ text: some StringProtocol, field: String) throws(ReelError) {
        let run = longestRun(in: text)
        if run > maxRun { throw error(field: field, run: run) }
    }

    static func isNonStarter(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value >= 0x300 && scalar.properties.canonicalCombiningClass.rawValue != 0
    }

    /// Decodes UTF-8 (through JSON escapes or percent-encoding) one byte at a time and measures runs.
    struct Scanner {
        let encoding: Encoding
        private(set) var longest = 0
        private var run = 0
        // UTF-8 decoding
        private var pending: UInt32 = 0
        private var remaining = 0
        // Escapes: `\` seen, hex digits of `\u` or of `%` collected so far
        private var escape: EscapeState = .none
        private var hex: UInt32 = 0
        private var hexDigits = 0
        private var highSurrogate: UInt32?

        private enum EscapeState { case none, backslash, unicode, percent }

        init(encoding: Encoding) { self.encoding = encoding }

        /// Between scalars, with no escape under way.
        var isIdle: Bool { escape == .none && remaining == 0 }

        /// A starter (any ASCII character) ends the run.
        mutating func sawStarter() {
            run = 0
            highSurrogate = nil
        }

        mutating func feed(_ byte: UInt8) {
            switch escape {
            case .backslash:
                if byte == UInt8(ascii: "u") {
                    escape = .unicode
                    hex = 0
                    hexDigits = 0
                } else {
                    escape = .none
                    scalar(UInt32(byte))
                }
                return
            case .unicode, .percent:
                guard let digit = Self.hexValue(byte) else {
                    escape = .none
                    utf8(byte)
                    return
                }
                hex = hex << 4 | digit
                hexDigits += 1
                if escape == .percent && hexDigits == 2 {
                    escape = .none
                    utf8(UInt8(hex))
                } else if escape == .unicode && hexDigits == 4 {
                    escape = .none
                    escaped(hex)
                }
                return
            case .none:
                break
            }
            if encoding == .json && byte == UInt8(ascii: "\\") {
                escape = .backslash
            } else if encoding == .percentEncoded && byte == UInt8(ascii: "%") {
                escape = .percent
                hex = 0
                hexDigits = 0
            } else {
                utf8(byte)
            }
        }

        /// A JSON `\uXXXX`: a scalar, or half of a surrogate pair.
        private mutating func escaped(_ unit: UInt32) {
            if (0xD800...0xDBFF).contains(unit) {
                highSurrogate = unit
                return
            }
            if (0xDC00...0xDFFF).contains(unit), let high = highSurrogate {
                highSurrogate = nil
                scalar(0x10000 + ((high - 0xD800) << 10) + (unit - 0xDC00))
                return
            }
            highSurrogate = nil
            scalar(unit)
        }

        private mutating func utf8(_ byte: UInt8) {
            if byte < 0x80 {
                remaining = 0
                scalar(UInt32(byte))
            } else if byte & 0xC0 == 0x80 {
                guard remaining > 0 else { return }
                pending = pending << 6 | UInt32(byte & 0x3F)
                remaining -= 1
                if remaining == 0 { scalar(pending) }
            } else if byte & 0xE0 == 0xC0 {
                pending = UInt32(byte & 0x1F)
                remaining = 1
            } else if byte & 0xF0 == 0xE0 {
                pending = UInt32(byte & 0x0F)
                remaining = 2
            } else {
                pending = UInt32(byte & 0x07)
                remaining = 3
            }
        }

        private mutating func scalar(_ value: UInt32) {
            if value >= 0x300, let scalar = Unicode.Scalar(value), isNonStarter(scalar) {
                run += 1
                longest = max(longest, run)
            } else {
                run = 0
            }
        }

        private static func hexValue(_ byte: UInt8) -> UInt32? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(byte - UInt8(ascii: "A") + 10)
            default: nil
            }
        }
    }
}
