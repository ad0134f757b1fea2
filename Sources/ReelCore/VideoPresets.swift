import Foundation

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

    /// `size: auto`: the preset whose aspect ratio is nearest the image's (compared as logarithms, in steps of 5 %,
    /// so 1280x704 and 960x544 count as the same shape), the one with more pixels among equals. A 16:9 photo gets
    /// 720p, a 9:16 one 720p-portrait, a square one the square preset.
    public static func nearest(toAspectOf image: ImageReference, for architecture: Architecture) -> Preset {
        let aspect = log(Double(image.width) / Double(image.height))
        let ranked = presets(for: architecture).map { preset in
            let distance = abs(log(Double(preset.width) / Double(preset.height)) - aspect)
            return (preset, Int((distance / 0.05).rounded(.down)), preset.width * preset.height)
        }
        guard let best = ranked.min(by: { ($0.1, -$0.2) < ($1.1, -$1.2) }) else {
            preconditionFailure("the model catalog gives \(architecture.rawValue) no size presets")
        }
        return best.0
    }
}
