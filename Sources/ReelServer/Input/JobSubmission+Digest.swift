import Crypto
import Foundation
import ReelAPI
import ReelCore

extension JobSubmission {
    /// A stable digest of the submission, to tell a retry of a request from a different request under the same
    /// idempotency key: SHA-256 of its canonical JSON (sorted keys, absent fields left out). It is computed from the
    /// decoded values, so key order, whitespace, explicit nulls and `17` against `17.0` do not change it.
    public var digest: String { canonicalDigest(self) }

    /// The digest of the submission and of the LoRA files it resolved to: the same body naming a LoRA whose file
    /// has since changed is a different request. Without LoRAs it is `digest`.
    public func digest(resolving loras: [ResolvedLoRA]?) -> String {
        guard let loras, !loras.isEmpty else { return digest }
        let files = loras.map { "\($0.name)=\($0.sha256)" }.joined(separator: ";")
        return "sha256:" + SHA256.hash(data: Array((digest + "|" + files).utf8)).hexDigits
    }
}

/// `sha256:` and the SHA-256 of a value's canonical JSON (sorted keys): the digest of a request body an idempotency
/// key is checked against, the same for the same decoded values whatever their order or spacing.
func canonicalDigest(_ value: some Encodable) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    // Encoding plain strings and numbers cannot fail.
    let canonical = (try? encoder.encode(value)) ?? Data()
    return "sha256:" + SHA256.hash(data: canonical).hexDigits
}
