import Foundation

/// Reading user styles from SDXL Prompt Styler JSON files: an array of objects with `name`, `prompt` and
/// `negative_prompt` (optional here), plus Reel's optional `label_zh`; any other key is ignored.
///
/// Every error is a `ReelError` with field `styles` whose message names the file and, for a bad entry, its
/// position (counted from 1) and the key at fault.
extension StyleLibrary {
    /// Where a data directory keeps its user styles: `<data-dir>/styles`.
    public static func directory(inDataDirectory dataDirectory: String) -> String {
        URL(fileURLWithPath: dataDirectory).appendingPathComponent("styles").path
    }

    /// The library a command or server uses: `base` (the built-ins), then every `*.json` of `<data-dir>/styles`,
    /// then `file`; a later style replaces an earlier one of the same name. A missing styles directory is fine;
    /// a missing `file` is an error.
    public static func load(
        dataDirectory: String?, file: String?, over base: StyleLibrary = .builtIn
    ) throws(ReelError) -> StyleLibrary {
        var library = base
        if let dataDirectory {
            library = try loadDirectory(directory(inDataDirectory: dataDirectory), over: library)
        }
        if let file {
            library = try load(file: file, over: library)
        }
        return library
    }

    /// `base` with the styles of one JSON file merged over it.
    public static func load(file path: String, over base: StyleLibrary = .builtIn) throws(ReelError) -> StyleLibrary {
        var library = base
        library.merge(try styles(inFile: path))
        return library
    }

    /// `base` with the styles of every `*.json` file in `directory` merged over it, file by file in order of file
    /// name, so that `20-mine.json` overrides `10-team.json`. A directory that does not exist adds nothing;
    /// hidden files (`.name.json`) are skipped.
    public static func loadDirectory(
        _ directory: String, over base: StyleLibrary = .builtIn
    ) throws(ReelError)
        -> StyleLibrary
    {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) else { return base }
        guard isDirectory.boolValue else {
            throw .invalid("styles", "\(directory) is a file, not a directory of style files (*.json)")
        }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw .invalid("styles", "cannot list the style directory \(directory): \(error.localizedDescription)")
        }
        var library = base
        let files = names.filter { !$0.hasPrefix(".") && $0.lowercased().hasSuffix(".json") }.sorted()
        for name in files {
            library.merge(try styles(inFile: URL(fileURLWithPath: directory).appendingPathComponent(name).path))
        }
        return library
    }

    /// The styles of one JSON file, in the file's order.
    public static func styles(inFile path: String) throws(ReelError) -> [Style] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot be read" : "does not exist"
            throw .invalid("styles", "the style file \(path) \(reason)")
        }
        return try styles(json: data, file: path)
    }

    /// The styles of JSON text in the SDXL Prompt Styler format; `file` names its source in errors.
    public static func styles(json data: Data, file: String) throws(ReelError) -> [Style] {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            throw .invalid("styles", "\(file) is not valid JSON: \(jsonReason(error, in: data))")
        }
        guard let entries = root as? [Any] else {
            throw .invalid(
                "styles",
                "\(file) must hold a JSON array of styles "
                    + #"([{"name": …, "prompt": "… {prompt} …", "negative_prompt": …}, …]), "#
                    + "not \(kind(of: root))")
        }
        var styles: [Style] = []
        var firstEntry: [String: Int] = [:]
        for (offset, entry) in entries.enumerated() {
            let position = offset + 1
            var named = ""
            func fail(_ problem: String) -> ReelError {
                .invalid("styles", "\(file): entry \(position) of \(entries.count)\(named) \(problem)")
            }
            guard let object = entry as? [String: Any] else {
                throw fail("is \(kind(of: entry)), not an object with name, prompt and negative_prompt")
            }
            func string(_ key: String, required: Bool) throws(ReelError) -> String? {
                switch object[key] {
                case nil, is NSNull:
                    if required { throw fail("has no \"\(key)\"") }
                    return nil
                case let text as String:
                    return text
                case let other?:
                    throw fail("has \"\(key)\" as \(kind(of: other)); it must be a string")
                }
            }
            let name = (try string("name", required: true) ?? "").trimmingWhitespace
            guard !name.isEmpty else { throw fail("has an empty \"name\"") }
            named = " (\"\(name)\")"
            let prompt = try string("prompt", required: true) ?? ""
            let negative = try string("negative_prompt", required: false) ?? ""
            let label = try string("label_zh", required: false)?.trimmingWhitespace ?? ""
            if let earlier = firstEntry[name.lowercased()] {
                throw fail("has the same name as entry \(earlier); names must be unique within a file")
            }
            firstEntry[name.lowercased()] = position
            styles.append(
                Style(name: name, prompt: prompt, negativePrompt: negative, labelZH: label.isEmpty ? nil : label))
        }
        return styles
    }

    /// The parser's own words, with the character offset it gives turned into a line and column.
    private static func jsonReason(_ error: any Error, in data: Data) -> String {
        let detail = (error as NSError).userInfo["NSDebugDescription"] as? String ?? error.localizedDescription
        if data.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return "the file is empty" }
        guard let range = detail.range(of: #"character (\d+)"#, options: .regularExpression),
            let offset = Int(detail[range].dropFirst("character ".count))
        else { return detail }
        var line = 1
        var column = 1
        for byte in data.prefix(offset) {
            if byte == 0x0A {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {
                column += 1
            }
        }
        return detail.replacingOccurrences(of: String(detail[range]), with: "line \(line), column \(column)")
    }

    private static func kind(of value: Any) -> String {
        switch value {
        case is [Any]: "an array"
        case is [String: Any]: "an object"
        case is String: "a string"
        case is NSNull: "null"
        // JSONSerialization gives booleans as an NSNumber subclass whose name says so.
        case is NSNumber: String(describing: type(of: value)).contains("Boolean") ? "a boolean" : "a number"
        default: "\(type(of: value))"
        }
    }
}
