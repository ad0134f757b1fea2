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
    /// The keys that may use the API; nil or empty for a server open to whoever reaches it (loopback only).
    public var apiKeys: APIKeys?
    /// Requests per key per minute; nil for no limit.
    public var rateLimitPerMinute: Int?
    /// The clock the rate limit's buckets refill by: the continuous clock, or a test's.
    public var rateLimitClock: @Sendable () -> ContinuousClock.Instant = { .now }
    /// The most rows one batch may have.
    public var maxBatchRows: Int
    /// How long a connection may take to send a complete request head (from opening, or from its last response),
    /// and may pause in the middle of a body, before it is closed.
    public var requestTimeout: Duration
    /// The most connections open at once; nil for as many as the descriptor limit leaves room for
    /// (`DescriptorLimit.connectionCap`). At the limit, a new connection closes the longest-idle one.
    public var maxConnections: Int?

    public init(
        host: String = "127.0.0.1", port: Int = 8080, maxBodyBytes: Int = 1 << 20, maxBatchBytes: Int = 16 << 20,
        heartbeatInterval: Duration = .seconds(15), defaultPageSize: Int = 50, maxPageSize: Int = 500,
        maxIdempotencyKeyLength: Int = 255, apiKeys: APIKeys? = nil, rateLimitPerMinute: Int? = nil,
        maxBatchRows: Int = 10_000, requestTimeout: Duration = .seconds(30), maxConnections: Int? = nil
    ) {
        self.requestTimeout = requestTimeout
        self.maxConnections = maxConnections
        self.host = host
        self.port = port
        self.maxBodyBytes = maxBodyBytes
        self.maxBatchBytes = maxBatchBytes
        self.heartbeatInterval = heartbeatInterval
        self.defaultPageSize = defaultPageSize
        self.maxPageSize = maxPageSize
        self.maxIdempotencyKeyLength = maxIdempotencyKeyLength
        self.apiKeys = apiKeys
        self.rateLimitPerMinute = rateLimitPerMinute
        self.maxBatchRows = maxBatchRows
    }

    /// Whether `host` is a loopback address (127.0.0.0/8, ::1 or localhost), reachable only from this machine.
    public static func isLoopback(_ host: String) -> Bool {
        let host = host.lowercased()
        if host == "localhost" || host == "::1" || host == "[::1]" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127"
            && octets.allSatisfy { octet in UInt8(octet).map { String($0) == octet } ?? false }
    }
}
