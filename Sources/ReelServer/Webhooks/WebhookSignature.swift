import Crypto
import Foundation
import ReelCore

/// Standard Webhooks signatures (standardwebhooks.com; the scheme the openai SDK's `webhooks.unwrap` verifies):
/// the headers `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature` (`v1,` and the base64
/// HMAC-SHA256 of `id.timestamp.body` under the secret, the bytes after `whsec_` base64-decoded).
struct WebhookSignature: Sendable {
    let key: SymmetricKey

    /// A secret as `--webhook-secret` or a key's takes it: `whsec_` and base64 of at least 24 bytes.
    init(secret: String) throws(ReelError) {
        guard secret.hasPrefix("whsec_"), let bytes = Data(base64Encoded: String(secret.dropFirst(6))),
            bytes.count >= 24, bytes.count <= 64
        else {
            throw .invalid("webhook-secret", "a webhook secret is whsec_ and the base64 of 24 to 64 random bytes")
        }
        key = SymmetricKey(data: bytes)
    }

    /// A new secret, for `reel` to print.
    static func newSecret() -> String {
        "whsec_" + Data(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }).base64EncodedString()
    }

    func signature(id: String, timestamp: Int64, body: [UInt8]) -> String {
        var message = Array("\(id).\(timestamp).".utf8)
        message += body
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: key)
        return "v1," + Data(mac).base64EncodedString()
    }

    /// The three headers of a delivery.
    func headers(id: String, timestamp: Int64, body: [UInt8]) -> [(String, String)] {
        [
            ("webhook-id", id), ("webhook-timestamp", String(timestamp)),
            ("webhook-signature", signature(id: id, timestamp: timestamp, body: body)),
        ]
    }

    /// Whether a delivery's headers are this secret's, and its timestamp within `tolerance` of `now`: what a
    /// receiver checks. Any of the space-separated `v1,` signatures may match.
    func verify(
        id: String, timestamp: String, signatures: String, body: [UInt8], now: Date, tolerance: TimeInterval = 300
    ) -> Bool {
        guard let seconds = Int64(timestamp), abs(Double(seconds) - now.timeIntervalSince1970) <= tolerance else {
            return false
        }
        let expected = Array(signature(id: id, timestamp: seconds, body: body).utf8)
        return signatures.split(separator: " ").contains { candidate in
            let given = Array(candidate.utf8)
            guard given.count == expected.count else { return false }
            return zip(given, expected).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
        }
    }
}
