/// An error a user can cause or meet, with a stable code, the field it concerns, and a message that says what to do.
///
/// Codes map to HTTP statuses and CLI exit codes only at the edges; adding a code breaks no caller.
public struct ReelError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// A value the user gave is not acceptable.
        public static let invalidValue = Code("invalid_value")
        /// A model name or directory cannot be used.
        public static let modelNotFound = Code("model_not_found")
        /// The engine (Python worker) cannot be started or found.
        public static let engineUnavailable = Code("engine_unavailable")
        /// The engine reported a failure while generating.
        public static let generationFailed = Code("generation_failed")
        /// The resource asked for does not exist.
        public static let notFound = Code("not_found")
        /// The request conflicts with the current state.
        public static let conflict = Code("conflict")
        /// A request body, or a file in it (an image), is larger than accepted.
        public static let payloadTooLarge = Code("payload_too_large")
        /// The disk that holds jobs or images is full: what was sent was not stored (507 over HTTP).
        public static let storageFull = Code("storage_full")
    }

    public var code: Code
    /// The input field the error concerns (`size`, `frames`, a CSV column …), when there is one.
    public var field: String?
    public var message: String

    public init(_ code: Code, field: String? = nil, _ message: String) {
        self.code = code
        self.field = field
        self.message = message
    }

    public static func invalid(_ field: String, _ message: String) -> ReelError {
        ReelError(.invalidValue, field: field, message)
    }

    public var description: String {
        if let field { return "\(field): \(message)" }
        return message
    }
}
