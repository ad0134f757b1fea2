import ReelCore

/// A `multipart/form-data` body (RFC 7578) split into its parts, as the OpenAI SDKs send `videos.create`.
///
/// The body has already been collected under the request size limit; this only splits it. A part with a
/// `filename` is a file upload.
struct Multipart {
    struct Part {
        var name: String
        var filename: String?
        var contentType: String?
        var body: ArraySlice<UInt8>

        /// The part's body as text, or nil when it is not UTF-8.
        var text: String? { String(validating: body, as: UTF8.self) }
    }

    var parts: [Part]

    /// The most parts a form may have: a video request has a dozen fields at most.
    static let maxParts = 64

    /// The boundary of a `multipart/form-data` content type, or nil when it is another type.
    static func boundary(ofContentType contentType: String) throws(ReelError) -> String? {
        let pieces = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard pieces.first?.lowercased() == "multipart/form-data" else { return nil }
        for piece in pieces.dropFirst() {
            let pair = piece.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces).lowercased() == "boundary" else {
                continue
            }
            var value = pair[1].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                value = String(value.dropFirst().dropLast())
            }
            guard (1...70).contains(value.utf8.count) else { break }
            return value
        }
        throw .invalid("Content-Type", "a multipart/form-data body needs a boundary of 1 to 70 characters")
    }

    init(body: [UInt8], boundary: String) throws(ReelError) {
        let delimiter = Array(("--" + boundary).utf8)
        let malformed = ReelError(.invalidValue, field: "body", "the multipart/form-data body is malformed")
        guard var position = Self.find(delimiter, in: body, from: 0) else { throw malformed }
        position += delimiter.count
        var parts: [Part] = []
        while true {
            // After a delimiter: "--" ends the body, CRLF starts a part.
            if Self.matches([0x2D, 0x2D], in: body, at: position) { break }
            guard Self.matches([0x0D, 0x0A], in: body, at: position) else { throw malformed }
            position += 2
            guard let headerEnd = Self.find([0x0D, 0x0A, 0x0D, 0x0A], in: body, from: position) else { throw malformed }
            guard let headerText = String(validating: body[position..<headerEnd], as: UTF8.self) else {
                throw malformed
            }
            let contentStart = headerEnd + 4
            guard let next = Self.find([0x0D, 0x0A] + delimiter, in: body, from: contentStart) else { throw malformed }
            parts.append(try Self.part(headers: headerText, body: body[contentStart..<next]))
            guard parts.count <= Self.maxParts else {
                throw .invalid("body", "the form has more than \(Self.maxParts) parts")
            }
            position = next + 2 + delimiter.count
        }
        self.parts = parts
    }

    private static func part(headers text: String, body: ArraySlice<UInt8>) throws(ReelError) -> Part {
        var name: String?
        var filename: String?
        var contentType: String?
        for line in text.split(separator: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let field = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if field == "content-type" { contentType = value }
            guard field == "content-disposition" else { continue }
            for parameter in Self.parameters(value) {
                switch parameter.0 {
                case "name": name = parameter.1
                case "filename": filename = parameter.1
                default: break
                }
            }
        }
        guard let name, !name.isEmpty else {
            throw .invalid("body", "a part of the multipart/form-data body has no name")
        }
        return Part(name: name, filename: filename, contentType: contentType, body: body)
    }

    /// The `key=value` or `key="value"` parameters after `form-data;`, keys lowercased.
    private static func parameters(_ value: String) -> [(String, String)] {
        var result: [(String, String)] = []
        var rest = Substring(value)
        while let semicolon = rest.firstIndex(of: ";") {
            rest = rest[rest.index(after: semicolon)...].drop(while: { $0 == " " })
            guard let equals = rest.firstIndex(of: "=") else { break }
            let key = rest[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            rest = rest[rest.index(after: equals)...]
            var parsed = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                while let character = rest.first, character != "\"" {
                    if character == "\\", rest.count > 1 {
                        rest = rest.dropFirst()
                    }
                    parsed.append(rest.first!)
                    rest = rest.dropFirst()
                }
                rest = rest.dropFirst()
            } else {
                let end = rest.firstIndex(of: ";") ?? rest.endIndex
                parsed = rest[..<end].trimmingCharacters(in: .whitespaces)
                rest = rest[end...]
            }
            result.append((key, parsed))
        }
        return result
    }

    private static func matches(_ needle: [UInt8], in haystack: [UInt8], at index: Int) -> Bool {
        guard index >= 0, index + needle.count <= haystack.count else { return false }
        for offset in needle.indices where haystack[index + offset] != needle[offset] { return false }
        return true
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count, start <= haystack.count - needle.count else {
            return nil
        }
        var index = start
        let first = needle[0]
        while index <= haystack.count - needle.count {
            if haystack[index] == first && matches(needle, in: haystack, at: index) { return index }
            index += 1
        }
        return nil
    }
}
