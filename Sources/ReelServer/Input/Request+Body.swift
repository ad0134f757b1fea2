import HTTPTypes
import Hummingbird
import ReelCore

extension Request {
    /// The whole body, refused with a 413 that says `tooLarge` as soon as it is declared, or grows, larger than
    /// `limit` bytes, so an oversized body is never read to its end. The answer closes the connection: the rest of
    /// the body is never read, so nothing after it on the connection could be found.
    mutating func collectBody(limit: Int, tooLarge message: String) async throws -> ByteBuffer {
        let tooLarge = APIError(
            status: .contentTooLarge, ReelError(.payloadTooLarge, message), headers: [.connection: "close"])
        if let length = headers[.contentLength].flatMap(Int.init), length > limit { throw tooLarge }
        do {
            return try await collectBody(upTo: limit)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw tooLarge
        }
    }

    /// The `Idempotency-Key` header, when there is one, no longer than `maxLength` bytes of UTF-8.
    func idempotencyKey(maxLength: Int) throws(ReelError) -> String? {
        guard let name = HTTPField.Name("Idempotency-Key"), let key = headers[name], !key.isEmpty else { return nil }
        guard key.utf8.count <= maxLength else {
            throw ReelError(
                .invalidValue, field: "Idempotency-Key",
                "the Idempotency-Key has \(key.utf8.count) bytes; the limit is \(maxLength)")
        }
        try CombiningMarks.check(key, field: "Idempotency-Key")
        return key
    }
}

/// Client text checked before it is parsed: see `CombiningMarks` for why a long run of combining marks is refused
/// before the text becomes JSON keys, form fields or CSV cells.
enum ClientText {
    static func check(
        _ bytes: some Sequence<UInt8>, as encoding: CombiningMarks.Encoding, field: String = "body"
    )
        throws(ReelError)
    {
        let run = CombiningMarks.longestRun(in: bytes, encoding: encoding)
        if run > CombiningMarks.maxRun { throw CombiningMarks.error(field: field, run: run) }
    }
}
