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
