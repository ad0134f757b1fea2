import Crypto
import Foundation
import ReelAPI
import Testing

@testable import ReelServer

@Suite struct DigestTests {
    /// swift-crypto's SHA-256 as the digests print it, against reference digests from Python's hashlib, across the
    /// padding boundaries (55, 56 bytes) and several blocks.
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (String(repeating: "a", count: 55), "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"),
        (String(repeating: "a", count: 56), "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"),
        (String(repeating: "a", count: 1000), "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"),
    ])
    func sha256MatchesReferenceDigests(input: String, expected: String) {
        #expect(SHA256.hash(data: Array(input.utf8)).hexDigits == expected)
    }

    @Test func digestIsSHA256OfTheCanonicalBody() throws {
        let submission = try JobSubmission(json: Array(#"{ "prompt" : "abc" }"#.utf8))
        // printf '{"prompt":"abc"}' | sha256sum
        #expect(submission.digest == "sha256:c55027ed8785f702a3c0d7235edb319205da519b3eccf8012b98500d153f5159")
    }

    @Test func digestIgnoresKeyOrderSpacingNullsAndNumberForm() throws {
        let a = try JobSubmission(json: Array(#"{"prompt": "fox", "steps": 4, "guidance": 5}"#.utf8))
        let b = try JobSubmission(json: Array(#"{"guidance":5.0,"seed":null,"steps":4,"prompt":"fox"}"#.utf8))
        let c = try JobSubmission(json: Array(#"{"prompt": "fox", "steps": 5, "guidance": 5}"#.utf8))
        #expect(a.digest == b.digest)
        #expect(a.digest != c.digest)
    }
}
