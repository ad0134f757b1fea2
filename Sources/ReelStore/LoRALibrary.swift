import Crypto
import Foundation
import ReelCore
import Synchronization

/// The LoRA files of this node: `<data-dir>/loras/*.safetensors` (or `--lora-dir`), each named by its file name
/// without the extension.
///
/// `catalog()` lists the directory as it is now, reading each file's header and hashing its bytes once: the results
/// are kept by file name, size and modification time, so a listing or a submission reads only new or changed files.
public final class LoRALibrary: Sendable {
    public let directory: URL
    private let memo = Mutex<[String: Memo]>([:])

    private struct Memo {
        var bytes: Int
        var modified: Date
        var entry: LoRAEntry
    }

    public init(directory: String) {
        self.directory = URL(fileURLWithPath: directory, isDirectory: true)
    }

    public static let fileExtension = "safetensors"

    /// The path of the file named `name` (which `LoRAUse.isValidName` accepted, so it stays in the directory).
    public func url(named name: String) -> URL {
        directory.appendingPathComponent(name + "." + Self.fileExtension)
    }

    /// Every usable-looking file of the directory, listed by name; a file whose header cannot be read or whose keys
    /// Reel does not understand is listed with its problem. A missing directory is an empty library.
    public func catalog(
        maxPerExpert: Int = LoRACatalog.defaultSlots, recipeLoRAs: [String: RecipeLoRAs] = [:],
        maxRank: Int = LoRACatalog.defaultMaxRank
    ) -> LoRACatalog {
        let fileManager = FileManager.default
        let names = (try? fileManager.contentsOfDirectory(atPath: directory.path)) ?? []
        var entries: [LoRAEntry] = []
        var seen = Set<String>()
        for file in names.sorted() where file.hasSuffix("." + Self.fileExtension) {
            let name = String(file.dropLast(Self.fileExtension.count + 1))
            guard LoRAUse.isValidName(name) else { continue }
            let url = directory.appendingPathComponent(file)
            guard let attributes = try? fileManager.attributesOfItem(atPath: url.path),
                attributes[.type] as? FileAttributeType == .typeRegular,
                let bytes = (attributes[.size] as? NSNumber)?.intValue,
                let modified = attributes[.modificationDate] as? Date
            else { continue }
            seen.insert(name)
            if let known = memo.withLock({ $0[name] }), known.bytes == bytes, known.modified == modified {
                entries.append(known.entry)
                continue
            }
            guard let entry = Self.read(url, name: name, bytes: bytes) else { continue }
            memo.withLock { $0[name] = Memo(bytes: bytes, modified: modified, entry: entry) }
            entries.append(entry)
        }
        memo.withLock { memo in memo = memo.filter { seen.contains($0.key) } }
        return LoRACatalog(
            entries: entries, directory: directory.path, maxPerExpert: maxPerExpert, recipeLoRAs: recipeLoRAs,
            maxRank: maxRank)
    }

    /// One file's entry: its header analysed and its bytes hashed (streamed, 4 MiB at a time). Nil when the file
    /// cannot be read at all.
    static func read(_ url: URL, name: String, bytes: Int) -> LoRAEntry? {
        guard let sha256 = hash(url) else { return nil }
        do throws(ReelError) {
            let tensors = try LoRAFile.readHeader(at: url)
            let info = try LoRAFile.analyze(tensors, fileName: url.lastPathComponent)
            return LoRAEntry(name: name, bytes: bytes, sha256: sha256, info: info, problem: nil)
        } catch {
            return LoRAEntry(name: name, bytes: bytes, sha256: sha256, info: nil, problem: error.message)
        }
    }

    static func hash(_ url: URL) -> String? {
        guard let handle = try? FileHandle(forReadingFrom: url) else { return nil }
        defer { try? handle.close() }
        var hasher = SHA256()
        while true {
            let chunk: Data?
            do { chunk = try handle.read(upToCount: 4 << 20) } catch { return nil }
            // nil or empty at the end of the file.
            guard let chunk, !chunk.isEmpty else { break }
            hasher.update(data: chunk)
        }
        return hasher.finalize().hexDigits
    }
}
