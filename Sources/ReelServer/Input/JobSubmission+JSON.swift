import Foundation
import ReelAPI
import ReelCore

extension JobSubmission {
    /// Decodes a request body, naming the field of any value that is missing its type or range.
    ///
    /// Strict about types (a string is never read as a number, so `"NaN"` or `"abc"` for `steps` is an error
    /// about `steps`), lenient about form: a number with an integral value (`17.0`, `1e3`) is a whole number.
    public init(json body: some Collection<UInt8>) throws(ReelError) {
        try ClientText.check(body, as: .json)
        let decoded: JSONInput
        do {
            decoded = try JSONDecoder().decode(JSONInput.self, from: Data(body))
        } catch {
            throw ReelError(.invalidJSON, "the body is not valid JSON; send a JSON object such as {\"prompt\": \"…\"}")
        }
        guard case .object(let fields) = decoded else {
            throw ReelError(
                .invalidJSON, "the body is \(decoded.typeName), not a JSON object; send {\"prompt\": \"…\"}")
        }
        try self.init(fields: fields)
    }

    init(fields: [String: JSONInput]) throws(ReelError) {
        // Sorted, so that the field an error names does not depend on dictionary order.
        for name in fields.keys.sorted() where !Self.knownFields.contains(name) {
            throw .invalid(
                String(name.unicodeScalars.prefix(60)),
                "unknown field \(name.quotedForMessage(limit: 60)); the known fields are "
                    + Self.knownFields.joined(separator: ", "))
        }
        let reader = FieldReader(fields: fields)
        self.init()
        prompt = try reader.string("prompt")
        negativePrompt = try reader.string("negative_prompt")
        style = try reader.string("style")
        size = try reader.string("size")
        seconds = try reader.number("seconds")
        frames = try reader.integer("frames")
        steps = try reader.integer("steps")
        guidance = try reader.number("guidance")
        if let seed = try reader.integer("seed") {
            guard seed >= 0 else { throw .invalid("seed", "the seed must be between 0 and \(Int64.max), not \(seed)") }
            self.seed = UInt64(seed)
        }
        model = try reader.string("model")
        pngFrames = try reader.bool("png_frames")
        priority = try reader.integer("priority")
        fps = try reader.integer("fps")
        interpolate = try reader.integer("interpolate")
        image = try reader.string("image")
        lastImage = try reader.string("last_image")
        fit = try reader.string("fit")
        loras = try reader.loras("loras")
        recipe = try reader.string("recipe")
        recipeLoRAs = try reader.recipePair("recipe_loras")
    }
}

/// Reads typed values out of a decoded JSON object; every error names its field.
private struct FieldReader {
    let fields: [String: JSONInput]

    private func value(_ name: String) -> JSONInput? {
        guard let value = fields[name], value != .null else { return nil }
        return value
    }

    func string(_ name: String, shown: String? = nil) throws(ReelError) -> String? {
        guard let value = value(name) else { return nil }
        guard case .string(let text) = value else {
            let field = shown ?? name
            throw .invalid(field, "\(field) must be a string, not \(value.typeName)")
        }
        return text
    }

    /// `[{"name", "scale", "expert"}, …]`, or the text form of the CSV column (`a:0.8;b@high`).
    func loras(_ name: String) throws(ReelError) -> [LoRARequest]? {
        guard let value = value(name) else { return nil }
        switch value {
        case .string(let text):
            return try LoRAUse.parseList(text, field: name).map(LoRARequest.init)
        case .array(let items):
            var result: [LoRARequest] = []
            for (index, item) in items.enumerated() {
                let field = "\(name)[\(index)]"
                guard case .object(let entry) = item else {
                    throw .invalid(
                        field, "\(field) must be an object {\"name\", \"scale\", \"expert\"}, not \(item.typeName)")
                }
                for key in entry.keys.sorted() where !["name", "scale", "expert"].contains(key) {
                    throw .invalid(
                        "\(field).\(String(key.unicodeScalars.prefix(40)))",
                        "unknown field \(key.quotedForMessage(limit: 40)) of a LoRA; its fields are name, scale, expert"
                    )
                }
                let reader = FieldReader(fields: entry)
                guard let loraName = try reader.string("name", shown: "\(field).name") else {
                    throw .invalid("\(field).name", "\(field).name is missing: give the LoRA's library name")
                }
                result.append(
                    LoRARequest(
                        name: loraName, scale: try reader.number("scale", shown: "\(field).scale"),
                        expert: try reader.string("expert", shown: "\(field).expert")))
            }
            return result
        default:
            throw .invalid(name, "\(name) must be a list of {\"name\", \"scale\", \"expert\"}, not \(value.typeName)")
        }
    }

    /// `{"high": NAME, "low": NAME}`, or the text form `HIGH,LOW`.
    func recipePair(_ name: String) throws(ReelError) -> RecipeLoRAPair? {
        guard let value = value(name) else { return nil }
        switch value {
        case .string(let text):
            return RecipeLoRAPair(try RecipeLoRAs.parse(text, field: name))
        case .object(let entry):
            let reader = FieldReader(fields: entry)
            guard let high = try reader.string("high", shown: "\(name).high"),
                let low = try reader.string("low", shown: "\(name).low"), entry.count == 2
            else {
                throw .invalid(name, "\(name) must be {\"high\": NAME, \"low\": NAME}, the recipe's two LoRAs")
            }
            return RecipeLoRAPair(high: high, low: low)
        default:
            throw .invalid(
                name, "\(name) must be {\"high\": NAME, \"low\": NAME} or \"HIGH,LOW\", not \(value.typeName)")
        }
    }

    func bool(_ name: String) throws(ReelError) -> Bool? {
        guard let value = value(name) else { return nil }
        guard case .bool(let flag) = value else {
            throw .invalid(name, "\(name) must be true or false, not \(value.typeName)")
        }
        return flag
    }

    func integer(_ name: String) throws(ReelError) -> Int? {
        guard let value = value(name) else { return nil }
        switch value {
        case .integer(let number):
            return Int(number)
        case .number(let number) where number.isFinite && number.rounded() == number && abs(number) < 9e15:
            return Int(number)
        case .number(let number):
            throw .invalid(name, "\(name) must be a whole number of sensible size, not \(number)")
        case .string(let text):
            throw .invalid(name, "\(name) must be a whole number, not the string \(text.quotedForMessage(limit: 40))")
        default:
            throw .invalid(name, "\(name) must be a whole number, not \(value.typeName)")
        }
    }

    func number(_ key: String, shown: String? = nil) throws(ReelError) -> Double? {
        guard let value = value(key) else { return nil }
        let name = shown ?? key
        switch value {
        case .integer(let number):
            return Double(number)
        case .number(let number) where number.isFinite:
            return number
        case .string(let text):
            throw .invalid(name, "\(name) must be a number, not the string \(text.quotedForMessage(limit: 40))")
        default:
            throw .invalid(name, "\(name) must be a finite number, not \(value.typeName)")
        }
    }
}
