import Foundation

/// Images a real encoder wrote (Pillow 12 in the engine's .venv: `Image.new(...).save(buffer, FORMAT, exif=...)`),
/// as base64, so the header reader is tested on files it did not make itself. `pngBomb100000x100000` is `png3x2`
/// with its IHDR rewritten to 100000 x 100000 pixels and the chunk's CRC recomputed (Python's `zlib.crc32`).
public enum ImageFixtures {
    public static let png3x2 = [UInt8](
        Data(
            base64Encoded:
                "iVBORw0KGgoAAAANSUhEUgAAAAMAAAACCAIAAAASFvFNAAAAFUlEQVR4nGM8ISfHwMDAwMDAxAADABMuAQhqwGVhAAAAAElF"
                + "TkSuQmCC"
        )!)
    public static let jpeg4x3Rotated6 = [UInt8](
        Data(
            base64Encoded:
                "/9j/4AAQSkZJRgABAQAAAQABAAD/4QAiRXhpZgAATU0AKgAAAAgAAQESAAMAAAABAAYAAAAAAAD/2wBDAAMCAgMCAgMDAwME"
                + "AwMEBQgFBQQEBQoHBwYIDAoMDAsKCwsNDhIQDQ4RDgsLEBYQERMUFRUVDA8XGBYUGBIUFRT/2wBDAQMEBAUEBQkFBQkUDQsN"
                + "FBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBT/wAARCAADAAQDASIAAhEBAxEB/8QA"
                + "HwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKB"
                + "kaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWG"
                + "h4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QA"
                + "HwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEI"
                + "FEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOE"
                + "hYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oA"
                + "DAMBAAIRAxEAPwDPooor+Vz+Kj//2Q=="
        )!)
    public static let webpLossy5x4 = [UInt8](
        Data(
            base64Encoded: "UklGRjgAAABXRUJQVlA4ICwAAACQAQCdASoFAAQAAUAmJaACdLoAA5gA/vsZy/+BO/+BO/+BO/8Cd9fAFPEgAA=="
        )!)
    public static let webpLossless6x2 = [UInt8](
        Data(
            base64Encoded: "UklGRh4AAABXRUJQVlA4TBEAAAAvBUAAAAdQhSoUuf+BiOh/AAA="
        )!)
    public static let webpExif7x3Rotated8 = [UInt8](
        Data(
            base64Encoded:
                "UklGRmwAAABXRUJQVlA4WAoAAAAIAAAABgAAAgAAVlA4ICwAAACQAQCdASoHAAMAAUAmJaACdLoAA5gA/vsZy/+BO/+BO/+B"
                + "O/8Cd9fAFPEgAEVYSUYaAAAATU0AKgAAAAgAAQESAAMAAAABAAgAAAAAAAA="
        )!)
    public static let pngExif5x2Rotated6 = [UInt8](
        Data(
            base64Encoded:
                "iVBORw0KGgoAAAANSUhEUgAAAAUAAAACCAIAAAAfCIEKAAAAGmVYSWZNTQAqAAAACAABARIAAwAAAAEABgAAAAAAANZnS2kA"
                + "AAASSURBVHicY2RkYmZAAkwMqAAAARIACkEUL2UAAAAASUVORK5CYII="
        )!)
    public static let pngBomb100000x100000 = [UInt8](
        Data(
            base64Encoded:
                "iVBORw0KGgoAAAANSUhEUgABhqAAAYagCAIAAAAnMJyfAAAAFUlEQVR4nGM8ISfHwMDAwMDAxAADABMuAQhqwGVhAAAAAElF"
                + "TkSuQmCC"
        )!)
}
