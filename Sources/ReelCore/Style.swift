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
        let styled =
            prompt.contains("{prompt}")
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

    /// The longest name for which `closestNames` suggests anything: the edit distance costs the product of the two
    /// lengths, so a long value gets no suggestion rather than a slow one. `style(named:)` suggests only for names
    /// at most 8 longer than the longest style name, too.
    public static let maxSuggestedNameLength = NameSuggestions.maxLength

    /// The style of that name (case-insensitive), or an error that lists the closest names.
    ///
    /// The cost is linear in the length of `name`, whatever it is: a name much longer than every style's is unknown
    /// without being compared (lowercasing may change a few scalars, hence the margin), and only short names are
    /// matched for suggestions.
    public func style(named name: String) throws(ReelError) -> Style {
        let length = name.unicodeScalars.count
        let longest = styles.map { $0.name.unicodeScalars.count }.max() ?? 0
        if length <= longest + 16 {
            let key = name.lowercased()
            if let style = styles.first(where: { $0.name.lowercased() == key }) { return style }
        }
        let listing = "(list them with `reel styles` or GET /v1/styles)"
        guard !styles.isEmpty else {
            throw .invalid("style", "unknown style \(name.quotedForMessage()); no styles are loaded \(listing)")
        }
        // A name much longer than every style's is no typo of one: no suggestion, and no edit distances.
        guard length <= min(Self.maxSuggestedNameLength, longest + 8) else {
            throw .invalid(
                "style",
                "unknown style \(name.quotedForMessage()) of \(length) characters; style names are short \(listing)")
        }
        let closest = closestNames(to: name, count: 3)
        let hint = closest.isEmpty ? "no styles are loaded" : "the closest are \(closest.joined(separator: ", "))"
        throw .invalid("style", "unknown style \(name.quotedForMessage()); \(hint) \(listing)")
    }

    /// Style names ordered by edit distance to `name`; none for a name longer than `maxSuggestedNameLength`.
    public func closestNames(to name: String, count: Int) -> [String] {
        NameSuggestions.closest(to: name, among: styles.map(\.name), count: count)
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
}
