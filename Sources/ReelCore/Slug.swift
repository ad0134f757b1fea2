/// A short, filesystem-safe name made from a prompt, for output folders a person can recognise.
public enum Slug {
    public static func make(_ text: String, maxLength: Int = 40) -> String {
        var slug = ""
        var pendingDash = false
        for character in text.lowercased() {
            if character.isLetter || character.isNumber {
                if pendingDash && !slug.isEmpty { slug.append("-") }
                pendingDash = false
                slug.append(character)
                if slug.count >= maxLength { break }
            } else {
                pendingDash = true
            }
        }
        return slug.isEmpty ? "video" : slug
    }
}
