/// How Reel reads a number written as text: a CSV cell, a form field, a query value, a header, a command-line
/// value. One grammar for all of them, so that no value is read one way in one place and another way elsewhere
/// (Swift's `Int("+5")` succeeds, `Int(" 5")` fails, `Double("nan")` and `Double("0x1p3")` succeed).
///
/// - Whitespace around the whole value (spaces, tabs, line breaks) is ignored; inside it, none is allowed.
/// - A whole number is ASCII digits, with a leading `-` only where the caller allows negatives; no `+`, no
///   separators, no other scripts' digits; at most `maxDigits` digits, and it must fit an `Int64`. Products of
///   such values can still overflow: callers bound each value before they multiply.
/// - A decimal number is written as in JSON: `-`? digits, an optional fraction, an optional exponent (`.5` and `5.`
///   are accepted too); `nan`, `inf` and hexadecimal are not numbers. At most `maxDecimalLength` characters.
public enum Numerals {
    /// The most digits of a whole number (`Int64.max` has 19).
    public static let maxDigits = 19
    /// The longest decimal number, exponent included.
    public static let maxDecimalLength = 40

    /// The whole number `text` holds, or nil when it is not one by the grammar above (or has too many digits).
    public static func wholeNumber(_ text: some StringProtocol, allowNegative: Bool = false) -> Int? {
        var bytes = trimmed(Substring(text).utf8)
        var negative = false
        if allowNegative, bytes.first == UInt8(ascii: "-") {
            negative = true
            bytes = bytes.dropFirst()
        }
        guard !bytes.isEmpty, bytes.count <= maxDigits, bytes.allSatisfy(isDigit) else { return nil }
        var value = 0
        for byte in bytes {
            let (tens, overflow) = value.multipliedReportingOverflow(by: 10)
            let (sum, carry) = tens.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
            guard !overflow, !carry else { return nil }
            value = sum
        }
        return negative ? -value : value
    }

    /// The decimal number `text` holds, or nil when it is not one by the grammar above or is not finite.
    public static func decimal(_ text: some StringProtocol) -> Double? {
        let bytes = trimmed(Substring(text).utf8)
        guard !bytes.isEmpty, bytes.count <= maxDecimalLength, isDecimal(bytes) else { return nil }
        guard let value = Double(String(decoding: bytes, as: UTF8.self)), value.isFinite else { return nil }
        return value
    }

    /// `text` without the whitespace around it, as UTF-8.
    static func trimmed<Bytes: BidirectionalCollection<UInt8>>(_ bytes: Bytes) -> Bytes.SubSequence {
        guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) })
        else { return bytes[bytes.endIndex...] }
        return bytes[first...last]
    }

    static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    static func isSpace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n")
            || byte == UInt8(ascii: "\r")
    }

    /// `-`? (digits (`.` digits?)? | `.` digits) ([eE] [+-]? digits)?
    private static func isDecimal(_ bytes: some Collection<UInt8>) -> Bool {
        var rest = bytes[...]
        if rest.first == UInt8(ascii: "-") { rest = rest.dropFirst() }
        let integer = rest.prefix(while: isDigit)
        rest = rest.dropFirst(integer.count)
        var fraction = 0
        if rest.first == UInt8(ascii: ".") {
            rest = rest.dropFirst()
            fraction = rest.prefix(while: isDigit).count
            rest = rest.dropFirst(fraction)
        }
        guard !integer.isEmpty || fraction > 0 else { return false }
        if rest.first == UInt8(ascii: "e") || rest.first == UInt8(ascii: "E") {
            rest = rest.dropFirst()
            if rest.first == UInt8(ascii: "+") || rest.first == UInt8(ascii: "-") { rest = rest.dropFirst() }
            let exponent = rest.prefix(while: isDigit).count
            guard exponent > 0 else { return false }
            rest = rest.dropFirst(exponent)
        }
        return rest.isEmpty
    }
}

extension StringProtocol {
    /// The value as an error message quotes it: at most `limit` Unicode scalars (a single "character" can hold
    /// thousands of combining marks), line breaks and other control characters escaped, an ellipsis when cut.
    public func quotedForMessage(limit: Int = 40) -> String {
        var shown = ""
        var count = 0
        for scalar in unicodeScalars {
            guard count < limit else {
                shown += "…"
                break
            }
            count += 1
            switch scalar {
            case "\n": shown += "\\n"
            case "\r": shown += "\\r"
            case "\t": shown += "\\t"
            case _ where scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value):
                shown += "\\u{\(String(scalar.value, radix: 16))}"
            default: shown.unicodeScalars.append(scalar)
            }
        }
        return "'" + shown + "'"
    }
}
