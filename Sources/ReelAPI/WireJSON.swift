import Foundation

/// How the API writes and reads JSON: dates as ISO 8601 strings in UTC with milliseconds
/// (`2025-06-01T12:00:00.123Z`), slashes unescaped. The server encodes with `makeEncoder()`, clients decode with
/// `makeDecoder()`.
public enum WireJSON {
    public static let dateStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    public static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(dateStyle.format(date))
        }
        return encoder
    }

    /// A decoder whose dates encode back to the text they were read from.
    ///
    /// The format style truncates to the millisecond, and the nearest `Date` to `…40.002` is often a hair below it,
    /// which would then encode as `…40.001`; a microsecond more keeps the millisecond the server wrote.
    public static func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = try? dateStyle.parse(text) else {
                throw DecodingError.dataCorruptedError(
                    in: container, debugDescription: "\(text) is not an ISO 8601 date such as 2025-06-01T12:00:00.123Z")
            }
            return date.addingTimeInterval(1e-6)
        }
        return decoder
    }
}
