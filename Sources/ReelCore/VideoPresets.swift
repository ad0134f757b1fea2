/// Named sizes per architecture, so a spreadsheet can say `720p` instead of `1280x704`.
public enum VideoPresets {
    public struct Preset: Sendable, Equatable {
        public var name: String
        public var width: Int
        public var height: Int
        public var size: String { "\(width)x\(height)" }
    }

    /// The presets of an architecture; every one is a multiple of its stride.
    public static func presets(for architecture: Architecture) -> [Preset] {
        switch architecture {
        case .ti2v5B:
            [
                Preset(name: "720p", width: 1280, height: 704), Preset(name: "720p-portrait", width: 704, height: 1280),
                Preset(name: "540p", width: 960, height: 544), Preset(name: "540p-portrait", width: 544, height: 960),
                Preset(name: "square", width: 704, height: 704), Preset(name: "small", width: 512, height: 288),
            ]
        case .t2vA14B:
            [
                Preset(name: "720p", width: 1280, height: 720), Preset(name: "720p-portrait", width: 720, height: 1280),
                Preset(name: "480p", width: 832, height: 480), Preset(name: "480p-portrait", width: 480, height: 832),
                Preset(name: "square", width: 720, height: 720),
            ]
        }
    }

    public static func preset(named name: String, for architecture: Architecture) -> Preset? {
        presets(for: architecture).first { $0.name == name.lowercased() }
    }
}
