import Foundation
import ReelCore
import ReelStore
import ReelTestSupport
import Testing

/// The image store on a real directory: stored once by content, checked before it is stored, found by id, swept
/// when no job names an image past its retention.
@Suite struct ImageStoreTests {
    @Test func theSameBytesAreOneImageUnderTheirHash() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            let store = ImageStore(dataDirectory: directory.path)
            let (first, created) = try store.store(ImageFixtures.png3x2)
            let (again, createdAgain) = try store.store(ImageFixtures.png3x2)
            #expect(created && !createdAgain && first == again)
            #expect(first.id == "img_" + first.sha256 && first.format == .png && first.width == 3 && first.height == 2)
            // The file holds the bytes, named by their SHA-256 (as sha256sum would print it).
            let url = store.url(for: first)
            #expect(try Data(contentsOf: url) == Data(ImageFixtures.png3x2))
            #expect(url.lastPathComponent == first.sha256 + ".png")
            let digest = try TestSupport.runCapturing("/usr/bin/sha256sum", [url.path])
            #expect(digest.hasPrefix(first.sha256))
            #expect(try store.reference(id: first.id) == first)
            let jpeg = try store.put(ImageFixtures.jpeg4x3Rotated6)
            #expect(jpeg.width == 3 && jpeg.height == 4, "the size as shown, after the EXIF orientation")
            #expect(store.url(for: jpeg).pathExtension == "jpg")
        }
    }

    @Test func aBadImageIsNotStoredAndTheErrorNamesTheField() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            let store = ImageStore(dataDirectory: directory.path)
            let error = try #require(throws: ReelError.self) {
                try store.put(ImageFixtures.png3x2.dropLast(4), field: "last_image")
            }
            #expect(error.field == "last_image")
            #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("images").path))
        }
    }

    @Test func idsAndDataURLsAreResolvedAndPathsAreNot() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            let store = ImageStore(dataDirectory: directory.path)
            let url = "data:image/webp;base64," + Data(ImageFixtures.webpLossy5x4).base64EncodedString()
            let fromURL = try store.resolve(url, field: "image")
            #expect(fromURL.format == .webp && fromURL.width == 5)
            #expect(try store.resolve(fromURL.id, field: "image") == fromURL)
            let missing = try #require(throws: ReelError.self) {
                try store.resolve("img_" + String(repeating: "0", count: 64), field: "image")
            }
            #expect(missing.code == .invalidValue && missing.field == "image")
            #expect(missing.message.contains("POST /v1/images"))
            for bad in ["/etc/passwd", "photos/a.png", "data:image/png,rawbytes", "data:image/png;base64,%%%"] {
                let error = try #require(throws: ReelError.self) { try store.resolve(bad, field: "last_image") }
                #expect(error.field == "last_image" && error.code == .invalidValue, "\(bad): \(error)")
            }
            let small = ImageStore(dataDirectory: directory.path, limits: ImageLimits(maxBytes: 64))
            let large = try #require(throws: ReelError.self) { try small.resolve(url + url, field: "image") }
            #expect(large.code == .payloadTooLarge)
        }
    }

    @Test func aFileIsReadWhereAPathIsGiven() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            let store = ImageStore(dataDirectory: directory.path)
            let path = directory.appendingPathComponent("kite.png").path
            try Data(ImageFixtures.png3x2).write(to: URL(fileURLWithPath: path))
            #expect(try store.put(file: path).sha256 == (try store.put(ImageFixtures.png3x2)).sha256)
            let missing = try #require(throws: ReelError.self) { try store.put(file: path + ".gone", field: "image") }
            #expect(missing.field == "image" && missing.message.contains("kite.png.gone"))
        }
    }

    @Test func sweepingRemovesOnlyOldImagesNoJobNames() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            let store = ImageStore(dataDirectory: directory.path)
            let named = try store.put(ImageFixtures.png3x2)
            let unnamed = try store.put(ImageFixtures.webpLossless6x2)
            let fresh = try store.put(ImageFixtures.webpLossy5x4)
            let old = Date().addingTimeInterval(-2 * 24 * 3600)
            for reference in [named, unnamed] {
                try FileManager.default.setAttributes(
                    [.modificationDate: old], ofItemAtPath: store.url(for: reference).path)
            }
            #expect(store.sweep(keeping: [named.sha256]) == 1)
            let exists = { (reference: ImageReference) in
                FileManager.default.fileExists(atPath: store.url(for: reference).path)
            }
            #expect(exists(named) && !exists(unnamed) && exists(fresh))
        }
    }
}
