/// What the HTTP API listens on and what it accepts.
public struct ReelServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// The largest request body accepted; larger ones are answered 413.
    public var maxBodyBytes: Int
    /// The largest batch body (CSV or JSON) accepted.
    public var maxBatchBytes: Int
    /// How often an idle event stream sends a `: ping` comment, so proxies and clients keep it open.
    public var heartbeatInterval: Duration
    /// The page size of `GET /v1/jobs` when `limit` is not given, and the largest one allowed.
    public var defaultPageSize: Int
    public var maxPageSize: Int
    /// The longest `Idempotency-Key` accepted.
    public var maxIdempotencyKeyLength: Int

    public init(
        host: String = "127.0.0.1", port: Int = 8080, maxBodyBytes: Int = 1 << 20, maxBatchBytes: Int = 16 << 20,
        heartbeatInterval: Duration = .seconds(15), defaultPageSize: Int = 50, maxPageSize: Int = 500,
        maxIdempotencyKeyLength: Int = 255
    ) {
        self.host = host
        self.port = port
        self.maxBodyBytes = maxBodyBytes
        self.maxBatchBytes = maxBatchBytes
        self.heartbeatInterval = heartbeatInterval
        self.defaultPageSize = defaultPageSize
        self.maxPageSize = maxPageSize
        self.maxIdempotencyKeyLength = maxIdempotencyKeyLength
    }
}
