/// `{"data": [...], "next": id | null}`: one page of jobs, newest first, and the cursor of the next page (the
/// `before` of `GET /v1/jobs`; null on the last page).
public struct JobPage: Sendable, Equatable, Codable {
    public var data: [JobResource]
    public var next: String?

    public init(data: [JobResource], next: String?) {
        self.data = data
        self.next = next
    }

    enum CodingKeys: String, CodingKey { case data, next }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(data, forKey: .data)
        try container.encode(next, forKey: .next)
    }
}
