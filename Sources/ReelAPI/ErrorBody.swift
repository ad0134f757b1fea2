/// An error as the API answers it: `{"error": {"code": …, "message": …, "field": … | null}}`.
///
/// The OpenAI-compatible routes answer `{"error": {"message", "type", "param", "code"}}` instead; that body decodes
/// as this one too, with no field.
public struct ErrorBody: Sendable, Equatable, Codable {
    /// What went wrong: a stable code, a message that says what to do, and the field at fault, if one is.
    public struct Detail: Sendable, Equatable, Codable {
        public var code: String
        public var message: String
        public var field: String?

        public init(code: String, message: String, field: String? = nil) {
            self.code = code
            self.message = message
            self.field = field
        }

        enum CodingKeys: String, CodingKey { case code, message, field }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(code, forKey: .code)
            try container.encode(message, forKey: .message)
            try container.encode(field, forKey: .field)
        }
    }

    public var error: Detail

    public init(error: Detail) { self.error = error }
}
