import ReelCore
import ReelStore

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
    ///
    /// A boundary is 1 to 70 of RFC 2046's characters (letters, digits and `'()+_,-./:=?`, and spaces but not at
    /// the end), quoted or not; anything else is refused with a message that says so.
    static func boundary(ofContentType contentType: String) throws(ReelError) -> String? {
        let pieces = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard pieces.first?.lowercased() == "multipart/form-data" else { return nil }
        let invalid = ReelError.invalid(
            "Content-Type",
            "a multipart/form-data body needs a boundary of 1 to 70 letters, digits or '()+_,-./:=? (spaces not at "
                + "the end), such as boundary=reel-form-1")
        for piece in pieces.dropFirst() {
            let pair = piece.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces).lowercased() == "boundary" else {
                continue
            }
            var value = pair[1].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                value = String(value.dropFirst().dropLast())
            }
            guard (1...70).contains(value.utf8.count), value.utf8.allSatisfy(isBoundaryByte),
                value.utf8.last != UInt8(ascii: " ")
            else { throw invalid }
            return value
        }
        throw invalid
    }

    private static func isBoundaryByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "A")...UInt8(ascii: "Z"):
            true
        default: Array("'()+_,-./:=? ".utf8).contains(byte)
        }
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

    /// The `key=value` or `key="value"` parameters after `form-data;`, keys lowercased. One pass over the text.
    private static func parameters(_ value: String) -> [(String, String)] {
        var result: [(String, String)] = []
        let scalars = Array(value.unicodeScalars)
        var index = 0
        func skipSpaces() {
            while index < scalars.count, scalars[index] == " " || scalars[index] == "\t" { index += 1 }
        }
        // Skip the disposition type ("form-data").
        while index < scalars.count, scalars[index] != ";" { index += 1 }
        while index < scalars.count {
            index += 1  // the ";"
            skipSpaces()
            var key = String.UnicodeScalarView()
            while index < scalars.count, scalars[index] != "=", scalars[index] != ";" {
                key.append(scalars[index])
                index += 1
            }
            guard index < scalars.count, scalars[index] == "=" else { continue }
            index += 1
            skipSpaces()
            var parsed = String.UnicodeScalarView()
            if index < scalars.count, scalars[index] == "\"" {
                index += 1
                while index < scalars.count, scalars[index] != "\"" {
                    if scalars[index] == "\\", index + 1 < scalars.count { index += 1 }
                    parsed.append(scalars[index])
                    index += 1
                }
                index += 1  // the closing quote
                while index < scalars.count, scalars[index] != ";" { index += 1 }
            } else {
                while index < scalars.count, scalars[index] != ";" {
                    parsed.append(scalars[index])
                    index += 1
                }
            }
            result.append(
                (
                    String(key).trimmingCharacters(in: .whitespaces).lowercased(),
                    String(parsed).trimmingCharacters(in: .whitespaces)
                ))
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

extension Multipart.Part {
    /// The part as a form field's value: its text, checked as the body's text is, or, for a file part named in
    /// `fileFields` (or a part there that is not text), the id of the image it holds, stored in `images` on
    /// arrival. A file under another name, or text that is not UTF-8, is an error naming the field.
    func formValue(fileFields: Set<String>, images: ImageStore) throws(ReelError) -> String {
        if filename != nil || (fileFields.contains(name) && text == nil) {
            guard fileFields.contains(name) else {
                throw .invalid(
                    String(name.unicodeScalars.prefix(60)),
                    "\(name.quotedForMessage(limit: 60)) is a file; only \(fileFields.sorted().joined(separator: ", ")) "
                        + "may be files")
            }
            return try images.put(body, field: name).id
        }
        guard let text else { throw .invalid(name, "\(name) is not UTF-8 text") }
        try ClientText.check(body, as: .utf8, field: name)
        return text
    }
}
