/// The names nearest to one a user mistyped, for "unknown X; the closest are …" messages (styles, LoRAs).
public enum NameSuggestions {
    /// The longest name anything is suggested for: the edit distance costs the product of the two lengths, so a long
    /// value gets no suggestion rather than a slow one.
    public static let maxLength = 64

    /// `names` ordered by case-insensitive edit distance to `name` (ties by name), at most `count`; none for a name
    /// longer than `maxLength`. A candidate longer than twice that is compared by its first part only: still a fair
    /// hint.
    public static func closest(to name: String, among names: [String], count: Int) -> [String] {
        guard name.unicodeScalars.count <= maxLength else { return [] }
        let target = Array(name.lowercased().unicodeScalars)
        let scored: [(name: String, distance: Int)] = names.map { candidate in
            (candidate, distance(Array(candidate.lowercased().unicodeScalars.prefix(maxLength * 2)), target))
        }
        let sorted = scored.sorted { lhs, rhs in
            lhs.distance == rhs.distance ? lhs.name < rhs.name : lhs.distance < rhs.distance
        }
        return sorted.prefix(count).map { $0.name }
    }

    static func distance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
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
