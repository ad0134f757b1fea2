/// A JSON value of a ComfyUI request, decoded without a schema. Whole numbers keep every bit of a 64-bit seed
/// (`unsigned` above `Int64.max`, up to 2^64−1); other numbers are doubles.
public enum ComfyValue: Sendable, Equatable, Hashable {
    case null
    case bool(Bool)
    case integer(Int64)
    case unsigned(UInt64)
    case number(Double)
    case string(String)
    case array([ComfyValue])
    case object([String: ComfyValue])

    /// What a client sees in an error message: ComfyUI's type names.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "BOOLEAN"
        case .integer, .unsigned: "INT"
        case .number: "FLOAT"
        case .string: "STRING"
        case .array: "list"
        case .object: "dict"
        }
    }

    public var double: Double? {
        switch self {
        case .integer(let v): Double(v)
        case .unsigned(let v): Double(v)
        case .number(let v): v
        default: nil
        }
    }

    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var object: [String: ComfyValue]? {
        if case .object(let o) = self { return o }
        return nil
    }
}

extension ComfyValue: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(UInt64.self) {
            self = .unsigned(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([ComfyValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: ComfyValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let v): try container.encode(v)
        case .integer(let v): try container.encode(v)
        case .unsigned(let v): try container.encode(v)
        case .number(let v): try container.encode(v.isFinite ? v : 0)
        case .string(let v): try container.encode(v)
        case .array(let v): try container.encode(v)
        case .object(let v): try container.encode(v)
        }
    }
}

extension ComfyValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByFloatLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(arrayLiteral elements: ComfyValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, ComfyValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}
