import Foundation
import ReelCore
import Testing

@testable import ReelStore

/// The images a store keeps for every node (`putImage`, `imageBytes`, `markImageUsed`, `deleteUnusedImages`), for
/// every store.
@Suite struct ImageRowTests {
    static func reference(_ digit: Character, format: ImageHeader.Format = .png) -> ImageReference {
        ImageReference(sha256: String(repeating: digit, count: 64), format: format, width: 3, height: 2)
    }

    /// A spec that starts from `image` and ends on `lastImage`.
    static func spec(image: ImageReference?, lastImage: ImageReference? = nil) -> GenerationSpec {
        var spec = makeSpec()
        spec.image = image
        spec.lastImage = lastImage
        spec.fit = .cover
        return spec
    }

    /// As large as images may be by default (20 MiB), every byte value in it.
    static let largest: [UInt8] = (0..<(20 << 20)).map { (index: Int) -> UInt8 in
        UInt8(truncatingIfNeeded: (index &* 40_503) >> 7)
    }

    @Test(arguments: StoreKind.allCases)
    func anImageIsStoredOnceAndReadBackWhole(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let image = Self.reference("a")
            let bytes = Self.largest
            let created = try await store.putImage(image, bytes: bytes, now: t0)
            #expect(created)
            #expect(try await store.imageBytes(sha256: image.sha256) == bytes)

            // The same SHA-256 again is the same row: kept as it was, not replaced.
            #expect(try await store.putImage(image, bytes: [1, 2, 3], now: at(1)) == false)
            #expect(try await store.imageBytes(sha256: image.sha256) == bytes)

            #expect(try await store.imageBytes(sha256: Self.reference("b").sha256) == nil)
            #expect(try await store.markImageUsed(sha256: image.sha256, now: at(2)))
            #expect(try await store.markImageUsed(sha256: Self.reference("b").sha256, now: at(2)) == false)
            #expect(try await store.putImage(Self.reference("b", format: .webp), bytes: [7], now: at(3)))
            #expect(try await store.imageBytes(sha256: Self.reference("b").sha256) == [7])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func theSweepDeletesOnlyImagesNoJobNamesThatWentUnused(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let (first, last, used, idle) = (
                Self.reference("1"), Self.reference("2"), Self.reference("3"),
                Self.reference("4")
            )
            for image in [first, last, used, idle] {
                #expect(try await store.putImage(image, bytes: [1], now: t0))
            }
            // One job starts from `first`, a queued one ends on `last` (and starts from `first` too).
            let (job, _) = try await store.enqueue(newJob("j1", spec: Self.spec(image: first)), now: at(1))
            _ = try await store.enqueue(newJob("j2", spec: Self.spec(image: first, lastImage: last)), now: at(1))
            // Named by a submission (or stored again) 23 hours later.
            #expect(try await store.markImageUsed(sha256: used.sha256, now: at(23 * 3600)))
            let day: TimeInterval = 24 * 3600
            #expect(try await store.deleteUnusedImages(unusedFor: day, now: at(day - 1)) == 0, "none is a day old")
            #expect(try await store.deleteUnusedImages(unusedFor: day, now: at(day + 1)) == 1)
            #expect(try await store.imageBytes(sha256: idle.sha256) == nil)
            #expect(try await store.imageBytes(sha256: used.sha256) == [1])
            #expect(try await store.deleteUnusedImages(unusedFor: day, now: at(2 * day)) == 1, "used a day ago")
            #expect(try await store.imageBytes(sha256: used.sha256) == nil)

            // Named by jobs, however old: kept. Once no job names an image, it goes at the next sweep.
            #expect(try await store.deleteUnusedImages(unusedFor: day, now: at(30 * day)) == 0)
            #expect(try await store.imageBytes(sha256: first.sha256) == [1])
            #expect(try await store.imageBytes(sha256: last.sha256) == [1])
            _ = try await store.cancel(id: "j2", now: at(30 * day))
            #expect(try await store.delete(id: "j2") != .notFound)
            #expect(try await store.deleteUnusedImages(unusedFor: day, now: at(30 * day)) == 1)
            #expect(try await store.imageBytes(sha256: last.sha256) == nil)
            #expect(try await store.imageBytes(sha256: first.sha256) == [1], "j1 still names it")
            #expect(job.spec.image == first)
        }
    }
}
