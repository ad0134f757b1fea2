/// What Reel learns of an image file without decoding its pixels: the format, the size as a viewer shows it (after
/// the EXIF orientation), and whether the file is whole. Reading it is linear in the file's size and allocates
/// nothing per byte, so it runs on every upload before anything is stored; the engine decodes the pixels later,
/// before any GPU work.
///
/// Checked here: the format is PNG, JPEG or WebP (by content, not by name); the file is not cut short (PNG: every
/// chunk's length and CRC up to IEND; JPEG: the markers up to the first scan and an end-of-image marker at the
/// end; WebP: the RIFF size equals the file's); the pixel count is within `ImageLimits.maxPixels` as the header
/// declares it, so a decompression bomb (a small file that decodes to billions of pixels) is refused unread.
public struct ImageHeader: Sendable, Equatable {
    public enum Format: String, Sendable, Codable, CaseIterable {
        case png, jpeg, webp

        /// The file name extension Reel stores it under.
        public var fileExtension: String { self == .jpeg ? "jpg" : rawValue }
        public var mediaType: String { "image/\(rawValue)" }
    }

    public var format: Format
    /// The pixel size stored in the file.
    public var storedWidth: Int
    public var storedHeight: Int
    /// The EXIF orientation (1…8; 1 when the file has none). 5…8 turn the picture a quarter.
    public var orientation: Int

    /// The size as shown: width and height swapped when the orientation turns the picture a quarter.
    public var width: Int { orientation >= 5 ? storedHeight : storedWidth }
    public var height: Int { orientation >= 5 ? storedWidth : storedHeight }
    public var pixels: Int { storedWidth * storedHeight }

    public init(format: Format, storedWidth: Int, storedHeight: Int, orientation: Int = 1) {
        self.format = format
        self.storedWidth = storedWidth
        self.storedHeight = storedHeight
        self.orientation = orientation
    }

    /// Reads the header of `bytes`; the error names `field` and says what is wrong.
    public static func read(
        _ bytes: some Collection<UInt8>, field: String = "image", limits: ImageLimits = .standard
    ) throws(ReelError) -> ImageHeader {
        let data = Array(bytes)
        guard data.count <= limits.maxBytes else {
            throw ReelError(
                .payloadTooLarge, field: field,
                "the image is \(data.count) bytes; at most \(limits.maxBytes) are accepted")
        }
        let header: ImageHeader
        do {
            var reader = ByteReader(data)
            if data.starts(with: pngSignature) {
                header = try readPNG(&reader)
            } else if data.starts(with: [0xFF, 0xD8, 0xFF]) {
                header = try readJPEG(&reader)
            } else if data.count >= 12, data[0..<4].elementsEqual("RIFF".utf8), data[8..<12].elementsEqual("WEBP".utf8)
            {
                header = try readWebP(&reader)
            } else {
                throw ReelError.invalid(field, "not a PNG, JPEG or WebP image")
            }
        } catch let error as ImageFormatError {
            throw ReelError.invalid(field, "not a readable image: \(error.reason)")
        } catch let error as ReelError {
            throw error
        } catch {
            throw ReelError.invalid(field, "not a readable image")
        }
        guard header.storedWidth > 0, header.storedHeight > 0 else {
            throw ReelError.invalid(field, "the image declares a size of \(header.storedWidth)x\(header.storedHeight)")
        }
        let (pixels, overflow) = header.storedWidth.multipliedReportingOverflow(by: header.storedHeight)
        guard !overflow, pixels <= limits.maxPixels else {
            throw ReelError.invalid(
                field,
                "the image is \(header.storedWidth)x\(header.storedHeight) pixels; at most \(limits.maxPixels) "
                    + "pixels are accepted")
        }
        return header
    }

    static let pngSignature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// PNG: the IHDR chunk gives the size; every chunk up to IEND must be whole and match its CRC; an eXIf chunk
    /// gives the orientation.
    static func readPNG(_ reader: inout ByteReader) throws(ImageFormatError) -> ImageHeader {
        try reader.skip(8)
        var size: (Int, Int)?
        var orientation = 1
        while true {
            let length = Int(try reader.uint32BE())
            let typeStart = reader.offset
            let type = try reader.bytes(4)
            let body = try reader.bytes(length)
            let crc = try reader.uint32BE()
            guard CRC32.checksum(reader.data[typeStart..<(typeStart + 4 + length)]) == crc else {
                throw ImageFormatError("the PNG chunk \(String(decoding: type, as: UTF8.self)) is damaged")
            }
            switch String(decoding: type, as: UTF8.self) {
            case "IHDR":
                guard size == nil, body.count == 13 else { throw ImageFormatError("the PNG header is malformed") }
                size = (Int(uint32BE(body, 0)), Int(uint32BE(body, 4)))
            case "eXIf":
                orientation = EXIF.orientation(tiff: body) ?? 1
            case "IEND":
                guard let (width, height) = size else { throw ImageFormatError("the PNG has no header chunk") }
                return ImageHeader(format: .png, storedWidth: width, storedHeight: height, orientation: orientation)
            default:
                if size == nil { throw ImageFormatError("the PNG does not start with its header chunk") }
            }
        }
    }

    /// JPEG: markers are walked to the frame header (SOFn) for the size and APP1 Exif for the orientation; the
    /// entropy-coded data after the first scan is not parsed, but the file must end with the end-of-image marker.
    static func readJPEG(_ reader: inout ByteReader) throws(ImageFormatError) -> ImageHeader {
        let data = reader.data
        guard data.count >= 4, data[data.count - 2] == 0xFF, data[data.count - 1] == 0xD9 else {
            throw ImageFormatError("the JPEG is cut short (it does not end with an end-of-image marker)")
        }
        try reader.skip(2)
        var size: (Int, Int)?
        var orientation = 1
        while true {
            guard try reader.byte() == 0xFF else { throw ImageFormatError("the JPEG's markers are malformed") }
            var marker = try reader.byte()
            while marker == 0xFF { marker = try reader.byte() }  // fill bytes
            switch marker {
            case 0xD8, 0x01, 0xD0...0xD7:
                continue  // no length
            case 0xD9:
                throw ImageFormatError("the JPEG ends before its first scan")
            default:
                break
            }
            let length = Int(try reader.uint16BE())
            guard length >= 2 else { throw ImageFormatError("the JPEG's markers are malformed") }
            let body = try reader.bytes(length - 2)
            switch marker {
            case 0xC0...0xC3, 0xC5...0xC7, 0xC9...0xCB, 0xCD...0xCF:
                guard body.count >= 5 else { throw ImageFormatError("the JPEG frame header is malformed") }
                size = (Int(body[3]) << 8 | Int(body[4]), Int(body[1]) << 8 | Int(body[2]))
            case 0xE1 where body.starts(with: Array("Exif\0\0".utf8)):
                orientation = EXIF.orientation(tiff: body.dropFirst(6)) ?? orientation
            case 0xDA:
                guard let (width, height) = size else { throw ImageFormatError("the JPEG has no frame header") }
                return ImageHeader(format: .jpeg, storedWidth: width, storedHeight: height, orientation: orientation)
            default:
                break
            }
        }
    }

    /// WebP: the RIFF size must be the file's; the size comes from the VP8X, VP8 or VP8L chunk, the orientation
    /// from an EXIF chunk.
    static func readWebP(_ reader: inout ByteReader) throws(ImageFormatError) -> ImageHeader {
        try reader.skip(4)
        let riffSize = Int(try reader.uint32LE())
        guard riffSize + 8 == reader.data.count else {
            throw ImageFormatError(
                "the WebP is \(reader.data.count) bytes but its RIFF header says \(riffSize + 8) (cut short?)")
        }
        try reader.skip(4)
        var size: (Int, Int)?
        var orientation = 1
        while reader.remaining >= 8 {
            let type = String(decoding: try reader.bytes(4), as: UTF8.self)
            let length = Int(try reader.uint32LE())
            let body = try reader.bytes(length)
            if length % 2 == 1, reader.remaining > 0 { try reader.skip(1) }
            switch type {
            case "VP8X":
                guard body.count >= 10 else { throw ImageFormatError("the WebP VP8X chunk is malformed") }
                size = (uint24LE(body, 4) + 1, uint24LE(body, 7) + 1)
            case "VP8 " where size == nil:
                guard body.count >= 10, body[3] == 0x9D, body[4] == 0x01, body[5] == 0x2A else {
                    throw ImageFormatError("the WebP VP8 frame header is malformed")
                }
                size = ((Int(body[7]) << 8 | Int(body[6])) & 0x3FFF, (Int(body[9]) << 8 | Int(body[8])) & 0x3FFF)
            case "VP8L" where size == nil:
                guard body.count >= 5, body[0] == 0x2F else {
                    throw ImageFormatError("the WebP VP8L header is malformed")
                }
                let bits = UInt32(body[1]) | UInt32(body[2]) << 8 | UInt32(body[3]) << 16 | UInt32(body[4]) << 24
                size = (Int(bits & 0x3FFF) + 1, Int((bits >> 14) & 0x3FFF) + 1)
            case "EXIF":
                let tiff = body.starts(with: Array("Exif\0\0".utf8)) ? body.dropFirst(6) : body[...]
                orientation = EXIF.orientation(tiff: tiff) ?? orientation
            default:
                break
            }
        }
        guard let (width, height) = size else { throw ImageFormatError("the WebP has no image chunk") }
        return ImageHeader(format: .webp, storedWidth: width, storedHeight: height, orientation: orientation)
    }

    private static func uint32BE(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3])
    }

    private static func uint24LE(_ bytes: [UInt8], _ at: Int) -> Int {
        Int(bytes[at]) | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]) << 16
    }
}

/// How big an image may be: the file's bytes and its declared pixels.
public struct ImageLimits: Sendable, Equatable {
    public var maxBytes: Int
    public var maxPixels: Int

    /// 20 MiB and 50 megapixels: a phone's photo passes; a crafted bomb does not.
    public init(maxBytes: Int = 20 << 20, maxPixels: Int = 50_000_000) {
        self.maxBytes = maxBytes
        self.maxPixels = maxPixels
    }

    public static let standard = ImageLimits()
}

struct ImageFormatError: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}

/// Reads forward through bytes; every read checks the bounds.
struct ByteReader {
    let data: [UInt8]
    private(set) var offset = 0

    init(_ data: [UInt8]) { self.data = data }

    var remaining: Int { data.count - offset }

    mutating func skip(_ count: Int) throws(ImageFormatError) {
        guard count >= 0, count <= remaining else { throw ImageFormatError("the file is cut short") }
        offset += count
    }

    mutating func bytes(_ count: Int) throws(ImageFormatError) -> [UInt8] {
        guard count >= 0, count <= remaining else { throw ImageFormatError("the file is cut short") }
        defer { offset += count }
        return Array(data[offset..<(offset + count)])
    }

    mutating func byte() throws(ImageFormatError) -> UInt8 {
        guard remaining >= 1 else { throw ImageFormatError("the file is cut short") }
        defer { offset += 1 }
        return data[offset]
    }

    mutating func uint16BE() throws(ImageFormatError) -> UInt16 {
        let b = try bytes(2)
        return UInt16(b[0]) << 8 | UInt16(b[1])
    }

    mutating func uint32BE() throws(ImageFormatError) -> UInt32 {
        let b = try bytes(4)
        return UInt32(b[0]) << 24 | UInt32(b[1]) << 16 | UInt32(b[2]) << 8 | UInt32(b[3])
    }

    mutating func uint32LE() throws(ImageFormatError) -> UInt32 {
        let b = try bytes(4)
        return UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
    }
}

/// The orientation tag (0x0112) of an EXIF TIFF structure's first IFD.
enum EXIF {
    static func orientation(tiff: some Collection<UInt8>) -> Int? {
        let bytes = Array(tiff)
        guard bytes.count >= 8 else { return nil }
        let little: Bool
        if bytes[0] == 0x49, bytes[1] == 0x49 {
            little = true
        } else if bytes[0] == 0x4D, bytes[1] == 0x4D {
            little = false
        } else {
            return nil
        }
        func u16(_ at: Int) -> Int? {
            guard at >= 0, at + 2 <= bytes.count else { return nil }
            return little ? Int(bytes[at]) | Int(bytes[at + 1]) << 8 : Int(bytes[at]) << 8 | Int(bytes[at + 1])
        }
        func u32(_ at: Int) -> Int? {
            guard let high = u16(little ? at + 2 : at), let low = u16(little ? at : at + 2) else { return nil }
            return high << 16 | low
        }
        guard let ifd = u32(4), let count = u16(ifd) else { return nil }
        for entry in 0..<min(count, 1024) {
            let at = ifd + 2 + entry * 12
            guard let tag = u16(at) else { return nil }
            if tag == 0x0112, let value = u16(at + 8), (1...8).contains(value) { return value }
        }
        return nil
    }
}

/// CRC-32 (ISO 3309, as PNG uses it).
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ bytes: some Collection<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}
