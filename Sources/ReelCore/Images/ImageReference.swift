/// An image a job starts from or ends on, by its content: the SHA-256 of its bytes names it, so the same picture
/// uploaded twice is one image, a job's record says exactly which picture it used, and a retried or resumed job
/// reads the same bytes (the worker checks them against the hash).
public struct ImageReference: Sendable, Equatable, Hashable, Codable {
    /// Lowercase hex.
    public var sha256: String
    public var format: ImageHeader.Format
    /// The size as shown (after the EXIF orientation).
    public var width: Int
    public var height: Int

    public init(sha256: String, format: ImageHeader.Format, width: Int, height: Int) {
        self.sha256 = sha256
        self.format = format
        self.width = width
        self.height = height
    }

    /// The image's id in the API: `img_` and its SHA-256.
    public var id: String { Self.idPrefix + sha256 }

    public static let idPrefix = "img_"

    /// The SHA-256 in an image id, when `id` is one (`img_` and 64 lowercase hex digits).
    public static func sha256(inID id: String) -> String? {
        guard id.hasPrefix(idPrefix) else { return nil }
        let hex = id.dropFirst(idPrefix.count)
        guard hex.utf8.count == 64, hex.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
        else { return nil }
        return String(hex)
    }
}

/// How an image is fitted to the video's size.
public enum ImageFit: String, Sendable, Codable, CaseIterable {
    /// Scaled to cover the frame and centre-cropped: nothing is distorted, the edges of a differently shaped
    /// picture are cut. The default.
    case cover
    /// Scaled to fit inside the frame, the rest black: nothing is cut.
    case contain
    /// Scaled to the frame's width and height independently.
    case stretch

    public static func parse(_ text: String, field: String = "fit") throws(ReelError) -> ImageFit {
        guard let fit = ImageFit(rawValue: text.trimmingWhitespace.lowercased()) else {
            throw .invalid(
                field,
                "fit must be one of \(allCases.map(\.rawValue).joined(separator: ", ")), not \(text.quotedForMessage())"
            )
        }
        return fit
    }
}
