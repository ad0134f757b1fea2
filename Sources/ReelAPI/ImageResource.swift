import ReelCore

/// A stored image as the API shows it (`POST /v1/images`, `GET /v1/images/{id}`).
public struct ImageResource: Sendable, Equatable, Codable {
    /// `img_` and the SHA-256: what jobs name as `image` or `last_image`.
    public var id: String
    public var object = "image"
    public var sha256: String
    /// `png`, `jpeg` or `webp`.
    public var format: String
    /// The size as shown, after the EXIF orientation.
    public var width: Int
    public var height: Int

    public init(_ reference: ImageReference) {
        id = reference.id
        sha256 = reference.sha256
        format = reference.format.rawValue
        width = reference.width
        height = reference.height
    }
}
