import Crypto
import Foundation
import ReelCore

/// The API keys a server accepts, kept only as SHA-256 digests: the keys themselves are not held in memory once
/// loaded, and a request's key is hashed and compared in constant time with every digest.
///
/// Each key has an id, the first 12 hex digits of its digest: jobs record it as their owner, and the server prints
/// it so an operator can tell tenants apart without seeing keys.
public struct APIKeys: Sendable {
    /// One accepted key.
    public struct Key: Sendable, Equatable {
        /// The first 12 hex digits of the digest; what jobs record as their owner.
        public var id: String
        let digest: [UInt8]
    }

    public let keys: [Key]

    /// The shortest key accepted: a shorter one is too easy to guess.
    public static let minimumLength = 16

    /// Keys from their text. Throws for a key that is too short or holds whitespace, or a key given twice.
    public init(keys texts: [String]) throws(ReelError) {
        var keys: [Key] = []
        for (index, text) in texts.enumerated() {
            guard text.count >= Self.minimumLength else {
                throw .invalid(
                    "api_key", "key \(index + 1) has \(text.count) characters; use at least \(Self.minimumLength)")
            }
            guard !text.contains(where: { $0.isWhitespace || $0.isNewline }) else {
                throw .invalid("api_key", "key \(index + 1) contains whitespace")
            }
            let digest = Self.digest(text)
            let key = Key(id: digest.prefix(6).hexDigits, digest: digest)
            guard !keys.contains(where: { $0.id == key.id }) else {
                throw .invalid("api_key", "key \(index + 1) is given twice")
            }
            keys.append(key)
        }
        self.keys = keys
    }

    /// Keys from a file's text: one per line; blank lines and lines starting with `#` are ignored.
    public static func parse(file text: String) -> [String] {
        text.split(whereSeparator: \.isNewline)
            .map { String($0).trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
    }

    /// Keys from `REEL_API_KEYS`: comma-separated, spaces around each ignored.
    public static func parse(environment value: String) -> [String] {
        value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    public var isEmpty: Bool { keys.isEmpty }

    /// The key an `Authorization` header presents: `Bearer KEY` (the scheme in any case), the key trimmed; nil for
    /// another form.
    static func bearerToken(_ header: some StringProtocol) -> String? {
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return parts[1].trimmingCharacters(in: .whitespaces)
    }

    /// The key whose digest matches `presented`'s, or nil. Every digest is compared in full, whatever matches, so
    /// the time taken does not tell how much of a digest a guess got right, nor which key matched.
    public func key(for presented: some StringProtocol) -> Key? {
        let digest = Self.digest(presented)
        var found: Key?
        for key in keys where Self.constantTimeEqual(key.digest, digest) {
            found = key
        }
        return found
    }

    static func digest(_ text: some StringProtocol) -> [UInt8] {
        Array(SHA256.hash(data: Array(text.utf8)))
    }

    /// Equality that reads every byte of both, with no branch on their values.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
