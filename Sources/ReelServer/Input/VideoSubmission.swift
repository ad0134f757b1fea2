import Foundation
import ReelAPI
import ReelCore
import ReelStore

/// The body of `POST /v1/videos` turned into a `JobSubmission`: OpenAI's fields (`prompt`, `model`, `seconds`,
/// `size`) plus Reel's own as extra fields (the SDKs send them with `extra_body`), as multipart/form-data (what the
/// SDKs send), JSON, or a URL-encoded form.
///
/// - `model`: the server's model name, or an OpenAI name (`sora-2`, `sora-2-pro`, dated versions: any `sora-…`),
///   which means "this server's model": a client written for OpenAI runs unchanged, and the video's `model` then
///   says what really made it.
/// - `seconds`: a string, as OpenAI's API has it ("4"), or a number; any duration the server's limits allow,
///   rounded to the nearest 4n+1 frames.
/// - `size`: `WIDTHxHEIGHT` (or a Reel preset name) valid for the server's model; OpenAI's sizes such as 1280x720 are
///   not changed silently into valid ones: the error names `size` and the nearest valid size.
/// - `input_reference` (image-to-video): the picture the video starts from, as a file part of a multipart body (what
///   the SDKs send), or in JSON as an image id (`img_…`) or a `data:` URL; the same as Reel's own `image`, which may
///   be given instead, not as well.
enum VideoSubmission {
    private enum Kind {
        case text, integer, number, flag, seconds
    }

    private static let kinds: [String: Kind] = [
        "prompt": .text, "model": .text, "seconds": .seconds, "size": .text, "input_reference": .text, "image": .text,
        "last_image": .text, "fit": .text,
        "negative_prompt": .text, "style": .text, "frames": .integer, "fps": .integer, "steps": .integer,
        "guidance": .number, "seed": .integer, "interpolate": .integer, "png_frames": .flag, "priority": .integer,
        "loras": .text, "recipe": .text, "recipe_loras": .text,
    ]

    /// The field names `POST /v1/videos` understands, in the order an error lists them.
    static let knownFields: [String] =
        ["prompt", "model", "seconds", "size", "input_reference"]
        + SpecFields.known.filter { !["prompt", "model", "seconds", "size"].contains($0) }

    /// The form fields that may be file parts: the images, stored on arrival in this node's files and passed on by
    /// id (the submission then puts them into the job store, `JobService.resolve`).
    static let fileFields: Set<String> = ["input_reference", "image", "last_image"]

    /// Whether `name` is one of OpenAI's video model names, all of which run as the server's model.
    static func isOpenAIModel(_ name: String) -> Bool {
        name.hasPrefix("sora-")
    }

    static func submission(json body: some Collection<UInt8>, serverModel: String) throws(ReelError) -> JobSubmission {
        try ClientText.check(body, as: .json)
        let decoded: JSONInput
        do {
            decoded = try JSONDecoder().decode(JSONInput.self, from: Data(body))
        } catch {
            throw ReelError(.invalidJSON, "the body is not valid JSON; send an object such as {\"prompt\": \"…\"}")
        }
        guard case .object(var fields) = decoded else {
            throw ReelError(.invalidJSON, "the body is \(decoded.typeName), not a JSON object")
        }
        if case .string(let text)? = fields["seconds"] { fields["seconds"] = try parse(text, as: .seconds, "seconds") }
        return try submission(fields: fields, serverModel: serverModel)
    }

    static func submission(
        form parts: [Multipart.Part], serverModel: String, images: ImageStore
    ) throws(ReelError) -> JobSubmission {
        var pairs: [(String, String)] = []
        for part in parts {
            pairs.append((part.name, try part.formValue(fileFields: fileFields, images: images)))
        }
        return try submission(pairs: pairs, serverModel: serverModel)
    }

    /// An `application/x-www-form-urlencoded` body, as `curl -d` sends.
    static func submission(urlencoded body: String, serverModel: String) throws(ReelError) -> JobSubmission {
        try ClientText.check(body.utf8, as: .percentEncoded)
        var pairs: [(String, String)] = []
        for item in body.split(separator: "&") where !item.isEmpty {
            let pair = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String? {
                text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
            }
            guard let name = decode(pair[0]), let value = pair.count == 2 ? decode(pair[1]) : "" else {
                throw .invalid("body", "the form body is not valid URL encoding")
            }
            pairs.append((name, value))
        }
        return try submission(pairs: pairs, serverModel: serverModel)
    }

    /// Form fields, all text, read by each field's kind; an empty value is left out.
    private static func submission(pairs: [(String, String)], serverModel: String) throws(ReelError) -> JobSubmission {
        var fields: [String: JSONInput] = [:]
        let (nested, pairs) = try nestedFields(pairs)
        fields.merge(nested) { _, new in new }
        for (name, text) in pairs {
            guard fields[name] == nil else {
                throw .invalid(
                    String(name.unicodeScalars.prefix(60)),
                    "\(name.quotedForMessage(limit: 60)) is given more than once")
            }
            guard let kind = kinds[name] else { throw unknown(name) }
            fields[name] = text.isEmpty ? .null : try parse(text, as: kind, name)
        }
        return try submission(fields: fields, serverModel: serverModel)
    }

    /// The list and object fields as a form encodes them (the openai SDK sends `extra_body={"loras": [{"name": "a",
    /// "scale": 0.5}]}` as the fields `loras[][name]` and `loras[][scale]`, and an object as `recipe_loras[high]`), and
    /// the other fields. A `loras[][name]` starts the next LoRA; its `scale` and `expert` follow it.
    private static func nestedFields(
        _ pairs: [(String, String)]
    ) throws(ReelError) -> (
        [String: JSONInput], [(String, String)]
    ) {
        var loras: [[String: JSONInput]] = []
        var pair: [String: JSONInput] = [:]
        var rest: [(String, String)] = []
        for (name, text) in pairs {
            if name.hasPrefix("loras[][") && name.hasSuffix("]") {
                let key = String(name.dropFirst("loras[][".count).dropLast())
                let field = "loras[\(max(loras.count - 1, 0))].\(String(key.unicodeScalars.prefix(40)))"
                switch key {
                case "name":
                    loras.append(["name": .string(text)])
                case "scale", "expert":
                    guard !loras.isEmpty, loras[loras.count - 1][key] == nil else {
                        throw .invalid(field, "\(name) must follow its LoRA's loras[][name]")
                    }
                    loras[loras.count - 1][key] = key == "expert" ? .string(text) : try parse(text, as: .number, field)
                default:
                    throw .invalid(
                        field,
                        "unknown field \(key.quotedForMessage(limit: 40)) of a LoRA; its fields are name, scale, expert"
                    )
                }
            } else if name == "recipe_loras[high]" || name == "recipe_loras[low]" {
                let key = name == "recipe_loras[high]" ? "high" : "low"
                guard pair[key] == nil else { throw .invalid("recipe_loras", "\(name) is given more than once") }
                pair[key] = .string(text)
            } else {
                rest.append((name, text))
            }
        }
        var fields: [String: JSONInput] = [:]
        if !loras.isEmpty {
            guard !rest.contains(where: { $0.0 == "loras" }) else {
                throw .invalid("loras", "give loras as one field or as loras[][name] fields, not both")
            }
            fields["loras"] = .array(loras.map { .object($0) })
        }
        if !pair.isEmpty {
            guard !rest.contains(where: { $0.0 == "recipe_loras" }) else {
                throw .invalid(
                    "recipe_loras", "give recipe_loras as one field or as recipe_loras[high] and [low], not both")
            }
            fields["recipe_loras"] = .object(pair)
        }
        return (fields, rest)
    }

    /// A form field's text as its kind, read with `Numerals`' grammar (the same as a CSV cell's).
    private static func parse(_ text: String, as kind: Kind, _ name: String) throws(ReelError) -> JSONInput {
        switch kind {
        case .text:
            return .string(text)
        case .integer:
            guard let value = Numerals.wholeNumber(text, allowNegative: true) else {
                throw .invalid(name, "\(name) must be a whole number (ASCII digits), not \(text.quotedForMessage())")
            }
            return .integer(Int64(value))
        case .number, .seconds:
            guard let value = Numerals.decimal(text) else {
                throw .invalid(name, "\(name) must be a finite number, not \(text.quotedForMessage())")
            }
            return .number(value)
        case .flag:
            switch text.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() {
            case "true", "1": return .bool(true)
            case "false", "0": return .bool(false)
            default: throw .invalid(name, "\(name) must be true or false, not \(text.quotedForMessage())")
            }
        }
    }

    private static func unknown(_ name: String) -> ReelError {
        .invalid(
            String(name.unicodeScalars.prefix(60)),
            "unknown field \(name.quotedForMessage(limit: 60)); the known fields are \(knownFields.joined(separator: ", "))"
        )
    }

    private static func submission(fields: [String: JSONInput], serverModel: String) throws(ReelError) -> JobSubmission
    {
        var fields = fields
        for name in fields.keys.sorted() where kinds[name] == nil { throw unknown(name) }
        if let reference = fields["input_reference"], reference != .null {
            if let image = fields["image"], image != .null {
                throw .invalid("input_reference", "give input_reference or image, not both: they are the same picture")
            }
            fields["image"] = reference
        }
        fields["input_reference"] = nil
        if case .string(let model)? = fields["model"] {
            if isOpenAIModel(model) || model == serverModel {
                fields["model"] = nil
            } else {
                throw .invalid(
                    "model",
                    "this server runs the model '\(serverModel)', not \(model.quotedForMessage(limit: 80)); give that name, an OpenAI "
                        + "name such as sora-2 (which runs as \(serverModel)), or leave model out")
            }
        }
        guard fields["prompt"].map({ $0 != .null }) ?? false else {
            throw .invalid("prompt", "prompt is required: describe the video to generate")
        }
        return try JobSubmission(fields: fields)
    }
}
