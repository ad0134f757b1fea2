import Foundation

/// A prompt template for video: the user's prompt is put where `{prompt}` stands, and the negative prompt is joined.
///
/// The JSON form is the SDXL Prompt Styler's (`name`, `prompt`, `negative_prompt`), plus an optional `label_zh`.
public struct Style: Sendable, Equatable, Codable {
    public var name: String
    public var prompt: String
    public var negativePrompt: String
    /// A Chinese label for the web page and CLI.
    public var labelZH: String?

    public init(name: String, prompt: String, negativePrompt: String, labelZH: String? = nil) {
        self.name = name
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.labelZH = labelZH
    }

    enum CodingKeys: String, CodingKey {
        case name, prompt
        case negativePrompt = "negative_prompt"
        case labelZH = "label_zh"
    }

    /// The styled prompt and negative prompt: `{prompt}` replaced by the user's prompt (appended when the template
    /// has none), and the style's negative prompt joined to the user's with a comma.
    public func apply(prompt userPrompt: String, negativePrompt userNegative: String) -> (String, String) {
        let styled = prompt.contains("{prompt}")
            ? prompt.replacingOccurrences(of: "{prompt}", with: userPrompt)
            : [prompt, userPrompt].filter { !$0.isEmpty }.joined(separator: ", ")
        let negative = [userNegative, negativePrompt].filter { !$0.isEmpty }.joined(separator: ", ")
        return (styled, negative)
    }
}

/// The styles a server or command knows: the built-in library plus any loaded from files.
public struct StyleLibrary: Sendable, Equatable {
    public private(set) var styles: [Style]

    public init(styles: [Style]) { self.styles = styles }

    /// A library with no styles.
    public static let empty = StyleLibrary(styles: [])

    /// The styles shipped with Reel.
    public static let builtIn = StyleLibrary(styles: BuiltInStyles.all)

    /// The style of that name (case-insensitive), or an error that lists the closest names.
    public func style(named name: String) throws(ReelError) -> Style {
        if let style = styles.first(where: { $0.name.lowercased() == name.lowercased() }) { return style }
        let closest = closestNames(to: name, count: 3)
        let hint = closest.isEmpty ? "no styles are loaded" : "the closest are \(closest.joined(separator: ", "))"
        throw .invalid("style", "unknown style '\(name)'; \(hint) (list them with `reel styles` or GET /v1/styles)")
    }

    /// Style names ordered by edit distance to `name`.
    public func closestNames(to name: String, count: Int) -> [String] {
        let target = Array(name.lowercased())
        let scored: [(name: String, distance: Int)] = styles.map { style in
            (style.name, Self.distance(Array(style.name.lowercased()), target))
        }
        let sorted = scored.sorted { lhs, rhs in
            lhs.distance == rhs.distance ? lhs.name < rhs.name : lhs.distance < rhs.distance
        }
        return sorted.prefix(count).map { $0.name }
    }

    /// Adds styles; a style with the name of an existing one replaces it.
    public mutating func merge(_ more: [Style]) {
        for style in more {
            if let index = styles.firstIndex(where: { $0.name.lowercased() == style.name.lowercased() }) {
                styles[index] = style
            } else {
                styles.append(style)
            }
        }
    }

    static func distance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = Swift.min(
                    previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
