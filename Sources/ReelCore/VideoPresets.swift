/// Named sizes per architecture, so a spreadsheet can say `720p` instead of `1280x704`.
public enum VideoPresets {
    public struct Preset: Sendable, Equatable {
        public var name: String
        public var width: Int
        public var height: Int
        public var size: String { "\(width)x\(height)" }
    }

    /// The presets of an architecture (from the model catalog); every one is a multiple of its stride.
    public static func presets(for architecture: Architecture) -> [Preset] {
        architecture.catalog.presets.map { Preset(name: $0.name, width: $0.width, height: $0.height) }
    }

    public static func preset(named name: String, for architecture: Architecture) -> Preset? {
        presets(for: architecture).first { $0.name == name.lowercased() }
    }
}
