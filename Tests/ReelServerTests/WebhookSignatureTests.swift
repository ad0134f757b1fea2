import Foundation
import ReelCore
import Testing

@testable import ReelServer

/// Standard Webhooks signatures: the specification's own test vector, and what a receiver's check refuses.
struct WebhookSignatureTests {
    // standard-webhooks/standard-webhooks, the libraries' shared test vector.
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    let id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
    let body = Array(#"{"test": 2432232314}"#.utf8)

    @Test func theSpecificationsVector() throws {
        let signer = try WebhookSignature(secret: secret)
        #expect(
            signer.signature(id: id, timestamp: 1_614_265_330, body: body)
                == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        let headers = Dictionary(uniqueKeysWithValues: signer.headers(id: id, timestamp: 1_614_265_330, body: body))
        #expect(headers["webhook-id"] == id && headers["webhook-timestamp"] == "1614265330")
    }

    @Test func aTamperedBodyAStaleTimestampOrAnotherSecretFail() throws {
        let signer = try WebhookSignature(secret: secret)
        let now = Date(timeIntervalSince1970: 1_614_265_330)
        let good = signer.signature(id: id, timestamp: 1_614_265_330, body: body)
        #expect(signer.verify(id: id, timestamp: "1614265330", signatures: good, body: body, now: now))
        #expect(signer.verify(id: id, timestamp: "1614265330", signatures: "v1,bm9wZQ== " + good, body: body, now: now))
        #expect(!signer.verify(id: id, timestamp: "1614265330", signatures: good, body: body + [0x20], now: now))
        #expect(!signer.verify(id: id, timestamp: "1614265330", signatures: good, body: body, now: now + 301))
        let other = try WebhookSignature(secret: WebhookSignature.newSecret())
        #expect(!other.verify(id: id, timestamp: "1614265330", signatures: good, body: body, now: now))
        #expect(throws: ReelError.self) { try WebhookSignature(secret: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") }
        #expect(throws: ReelError.self) { try WebhookSignature(secret: "whsec_c2hvcnQ=") }
    }
}
