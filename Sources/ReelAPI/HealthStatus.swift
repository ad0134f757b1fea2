/// The answer of `GET /healthz` (`ok`) and `GET /readyz` (`ready`, or `not_ready` with a 503).
public struct HealthStatus: Sendable, Equatable, Codable {
    public var status: String

    public init(status: String) { self.status = status }
}
