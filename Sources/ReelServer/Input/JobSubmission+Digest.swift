import Crypto
import Foundation
import ReelAPI

extension JobSubmission {
    /// A stable digest of the submission, to tell a retry of a request from a different request under the same
    /// idempotency key: SHA-256 of its canonical JSON (sorted keys, absent fields left out). It is computed from the
    /// decoded values, so key order, whitespace, explicit nulls and `17` against `17.0` do not change it.
    public var digest: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding plain strings and numbers cannot fail.
        let canonical = (try? encoder.encode(self)) ?? Data()
        return "sha256:" + SHA256.hash(data: canonical).hexDigits
    }
}

extension Sequence<UInt8> {
    /// The bytes as lowercase hexadecimal, two digits each.
    var hexDigits: String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(2 * underestimatedCount)
        for byte in self {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
