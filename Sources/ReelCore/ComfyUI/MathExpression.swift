import Foundation

/// The arithmetic of ComfyUI's `ComfyMathExpression` node as the Wan2.2 templates use it (`floor(a * b) + 1`):
/// numbers, the variables given, `+ - * / // % **`, unary minus, parentheses and the functions floor, ceil, round,
/// abs, min, max, sqrt. Bounded: at most 256 tokens and 32 levels of nesting.
public enum MathExpression {
    public struct Failure: Error, Sendable {
        public var message: String
    }

    public static func evaluate(_ text: String, variables: [String: Double]) throws(Failure) -> Double {
        var parser = Parser(tokens: try tokenize(text), variables: variables)
        let value = try parser.expression(depth: 0)
        guard parser.index == parser.tokens.count else {
            throw Failure(message: "unexpected \(parser.tokens[parser.index]) in \(text)")
        }
        return value
    }

    enum Token: CustomStringConvertible, Equatable {
        case number(Double)
        case name(String)
        case symbol(String)

        var description: String {
            switch self {
            case .number(let n): "\(n)"
            case .name(let s), .symbol(let s): "'\(s)'"
            }
        }
    }

    static func tokenize(_ text: String) throws(Failure) -> [Token] {
        var tokens: [Token] = []
        let chars = Array(text.unicodeScalars)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c == " " || c == "\t" || c == "\n" {
                i += 1
            } else if ("0"..."9").contains(c) || c == "." {
                var j = i
                while j < chars.count, ("0"..."9").contains(chars[j]) || chars[j] == "." { j += 1 }
                guard let n = Double(String(String.UnicodeScalarView(chars[i..<j]))) else {
                    throw Failure(message: "bad number in \(text)")
                }
                tokens.append(.number(n))
                i = j
            } else if ("a"..."z").contains(c) || ("A"..."Z").contains(c) || c == "_" {
                var j = i
                while j < chars.count,
                    ("a"..."z").contains(chars[j]) || ("A"..."Z").contains(chars[j]) || chars[j] == "_"
                        || ("0"..."9").contains(chars[j])
                {
                    j += 1
                }
                tokens.append(.name(String(String.UnicodeScalarView(chars[i..<j]))))
                i = j
            } else if i + 1 < chars.count, ["**", "//"].contains(String(String.UnicodeScalarView(chars[i...i + 1]))) {
                tokens.append(.symbol(String(String.UnicodeScalarView(chars[i...i + 1]))))
                i += 2
            } else if "+-*/%(),".unicodeScalars.contains(c) {
                tokens.append(.symbol(String(c)))
                i += 1
            } else {
                throw Failure(message: "unexpected character '\(c)' in \(text)")
            }
            guard tokens.count <= 256 else { throw Failure(message: "the expression is longer than 256 tokens") }
        }
        return tokens
    }

    struct Parser {
        let tokens: [Token]
        let variables: [String: Double]
        var index = 0

        var next: Token? { index < tokens.count ? tokens[index] : nil }

        mutating func take(_ symbol: String) -> Bool {
            if next == .symbol(symbol) {
                index += 1
                return true
            }
            return false
        }

        mutating func expression(depth: Int) throws(Failure) -> Double {
            guard depth < 32 else { throw Failure(message: "the expression nests deeper than 32 levels") }
            var value = try term(depth: depth)
            while true {
                if take("+") {
                    value += try term(depth: depth)
                } else if take("-") {
                    value -= try term(depth: depth)
                } else {
                    return value
                }
            }
        }

        mutating func term(depth: Int) throws(Failure) -> Double {
            var value = try unary(depth: depth)
            while true {
                if take("*") {
                    value *= try unary(depth: depth)
                } else if take("//") {
                    value = (value / (try unary(depth: depth))).rounded(.down)
                } else if take("/") {
                    value /= try unary(depth: depth)
                } else if take("%") {
                    let d = try unary(depth: depth)
                    value = value - d * (value / d).rounded(.down)
                } else {
                    return value
                }
            }
        }

        mutating func unary(depth: Int) throws(Failure) -> Double {
            if take("-") { return -(try unary(depth: depth + 1)) }
            if take("+") { return try unary(depth: depth + 1) }
            let base = try primary(depth: depth)
            if take("**") { return pow(base, try unary(depth: depth + 1)) }
            return base
        }

        mutating func primary(depth: Int) throws(Failure) -> Double {
            guard let token = next else { throw Failure(message: "the expression ends too soon") }
            index += 1
            switch token {
            case .number(let n):
                return n
            case .symbol("("):
                let value = try expression(depth: depth + 1)
                guard take(")") else { throw Failure(message: "a '(' is not closed") }
                return value
            case .name(let name):
                if take("(") {
                    var arguments: [Double] = []
                    if !take(")") {
                        repeat { arguments.append(try expression(depth: depth + 1)) } while take(",")
                        guard take(")") else { throw Failure(message: "\(name)( is not closed") }
                    }
                    return try call(name, arguments)
                }
                guard let value = variables[name] else {
                    throw Failure(
                        message: "\(name) is not given (the expression may use "
                            + (variables.keys.sorted().isEmpty
                                ? "no variables" : variables.keys.sorted().joined(separator: ", "))
                            + ")")
                }
                return value
            default:
                throw Failure(message: "unexpected \(token)")
            }
        }

        func call(_ name: String, _ arguments: [Double]) throws(Failure) -> Double {
            func one() throws(Failure) -> Double {
                guard arguments.count == 1 else { throw Failure(message: "\(name) takes one argument") }
                return arguments[0]
            }
            switch name {
            case "floor": return try one().rounded(.down)
            case "ceil": return try one().rounded(.up)
            case "round": return try one().rounded(.toNearestOrEven)
            case "abs": return abs(try one())
            case "sqrt": return (try one()).squareRoot()
            case "int": return try one().rounded(.towardZero)
            case "min", "max":
                guard !arguments.isEmpty else { throw Failure(message: "\(name) takes at least one argument") }
                return name == "min" ? arguments.min()! : arguments.max()!
            default: throw Failure(message: "unknown function \(name)")
            }
        }
    }
}
