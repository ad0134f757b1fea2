import ReelTestSupport
import Testing

@testable import ReelCore

/// The image header reader on files a real encoder wrote, and on the ways a file can be wrong.
@Suite struct ImageHeaderTests {
    @Test(arguments: [
        (ImageFixtures.png3x2, ImageHeader.Format.png, 3, 2, 1),
        (ImageFixtures.pngExif5x2Rotated6, .png, 2, 5, 6),
        (ImageFixtures.jpeg4x3Rotated6, .jpeg, 3, 4, 6),
        (ImageFixtures.webpLossy5x4, .webp, 5, 4, 1),
        (ImageFixtures.webpLossless6x2, .webp, 6, 2, 1),
        (ImageFixtures.webpExif7x3Rotated8, .webp, 3, 7, 8),
    ])
    func everyFormatGivesItsShownSizeAndOrientation(
        bytes: [UInt8], format: ImageHeader.Format, width: Int, height: Int, orientation: Int
    ) throws {
        let header = try ImageHeader.read(bytes)
        #expect(header.format == format)
        #expect(header.width == width && header.height == height, "\(header)")
        #expect(header.orientation == orientation)
    }

    @Test func aCutShortFileIsRefusedAndTheErrorNamesTheField() {
        for (name, bytes) in [
            ("png", ImageFixtures.png3x2), ("jpeg", ImageFixtures.jpeg4x3Rotated6),
            ("webp", ImageFixtures.webpLossy5x4),
        ] {
            for cut in [1, 12, bytes.count / 2] {
                #expect(throws: ReelError.self, "\(name) without its last \(cut) bytes") {
                    try ImageHeader.read(bytes.dropLast(cut), field: "last_image")
                }
                let error = try? #require(throws: ReelError.self) {
                    try ImageHeader.read(bytes.dropLast(cut), field: "last_image")
                }
                #expect(error?.field == "last_image" && error?.code == .invalidValue)
            }
        }
    }

    @Test func aDamagedPNGChunkIsRefused() throws {
        var bytes = ImageFixtures.png3x2
        bytes[bytes.count - 20] ^= 0xFF  // inside IDAT: its CRC no longer matches
        let error = try #require(throws: ReelError.self) { try ImageHeader.read(bytes) }
        #expect(error.message.contains("damaged"), "\(error)")
    }

    @Test func aDecompressionBombIsRefusedFromItsHeaderAlone() throws {
        let error = try #require(throws: ReelError.self) { try ImageHeader.read(ImageFixtures.pngBomb100000x100000) }
        #expect(error.field == "image" && error.code == .invalidValue)
        #expect(error.message.contains("100000x100000") && error.message.contains("50000000"), "\(error)")
        // A server that allows more pixels reads it.
        let header = try ImageHeader.read(
            ImageFixtures.pngBomb100000x100000, limits: ImageLimits(maxPixels: 10_000_000_000))
        #expect(header.width == 100_000)
    }

    @Test func tooManyBytesIsPayloadTooLarge() throws {
        let error = try #require(throws: ReelError.self) {
            try ImageHeader.read(ImageFixtures.jpeg4x3Rotated6, limits: ImageLimits(maxBytes: 100))
        }
        #expect(error.code == .payloadTooLarge && error.field == "image")
        #expect(error.message.contains("\(ImageFixtures.jpeg4x3Rotated6.count) bytes"))
    }

    @Test func textAndOtherFormatsAreNotImages() throws {
        for bytes in [Array("a red fox".utf8), [], Array("GIF89a\u{1}\u{0}\u{1}\u{0}".utf8), [0x89, 0x50, 0x4E]] {
            let error = try #require(throws: ReelError.self) { try ImageHeader.read(bytes) }
            #expect(error.field == "image" && error.code == .invalidValue)
        }
    }

    @Test func theCRCIsPNGs() {
        // The check value of the CRC-32 PNG uses (ISO 3309), as its specification gives it for "123456789".
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
    }
}
