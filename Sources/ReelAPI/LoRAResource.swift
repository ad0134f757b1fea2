/// A file of the LoRA library as `GET /v1/loras` lists it. `format`, `rank`, `dim`, `blocks` and `architectures` are
/// null, and `error` says why, for a file Reel cannot apply; `fits_server` says whether this server's model takes it.
public struct LoRAResource: Sendable, Equatable, Codable {
    public var name: String
    public var bytes: Int
    public var sha256: String
    /// `diffusers`, `kohya`, `comfy`, `musubi` or `lightx2v`.
    public var format: String?
    public var rank: Int?
    public var dim: Int?
    public var blocks: Int?
    /// The models it fits: architectures (`t2v-a14b`) and tiny models (`tiny:t2v-a14b`).
    public var architectures: [String]?
    public var fitsServer: Bool
    public var error: String?

    public init(
        name: String, bytes: Int, sha256: String, format: String?, rank: Int?, dim: Int?, blocks: Int?,
        architectures: [String]?, fitsServer: Bool, error: String?
    ) {
        self.name = name
        self.bytes = bytes
        self.sha256 = sha256
        self.format = format
        self.rank = rank
        self.dim = dim
        self.blocks = blocks
        self.architectures = architectures
        self.fitsServer = fitsServer
        self.error = error
    }

    enum CodingKeys: String, CodingKey {
        case name, bytes, sha256, format, rank, dim, blocks, architectures, error
        case fitsServer = "fits_server"
    }

    /// Every key is written, null where there is no value, so a client reads one shape.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(bytes, forKey: .bytes)
        try container.encode(sha256, forKey: .sha256)
        try container.encode(format, forKey: .format)
        try container.encode(rank, forKey: .rank)
        try container.encode(dim, forKey: .dim)
        try container.encode(blocks, forKey: .blocks)
        try container.encode(architectures, forKey: .architectures)
        try container.encode(fitsServer, forKey: .fitsServer)
        try container.encode(error, forKey: .error)
    }
}
