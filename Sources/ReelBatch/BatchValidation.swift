import ReelCSV
import ReelCore

/// The one validation of a batch, for `reel batch` and `POST /v1/batches` alike: pure, no I/O.
///
/// Two stages. `read(csv:maxRows:)` checks the file as a whole (its text, that it parses, its header, its size) and
/// types each row's fields; `check(_:)` applies the model, the priority range, the limits and the style library to
/// every row. A whole-file problem is thrown as a `ReelError`; a row's problem is that row's verdict, so the good
/// rows still run. The server reads JSON batches itself (the wire format is the API's) and hands the rows to
/// `check(_:)`.
public struct BatchValidation: Sendable {
    /// The model every row runs with.
    public var model: ModelInfo
    public var limits: GenerationLimits
    /// The styles a row may name.
    public var styles: StyleLibrary
    /// The LoRAs a row may name.
    public var loras: LoRACatalog = .empty
    /// The most rows one batch may have.
    public var maxRows: Int
    /// Who runs the rows, as an error about another model names it ("this server", "reel batch").
    public var runner: String
    /// Reads a row's image by the name the row gives it (`image`, `last_image`); nil where images are not taken.
    public var images: ImageResolver?

    /// Turns an image's name in a row (a path, an id) into the checked, stored image; the error names `field`.
    public typealias ImageResolver = @Sendable (_ name: String, _ field: String) throws(ReelError) -> ImageReference

    /// The row limit of `reel serve` (`--max-batch-rows`) and of `reel batch`, unless told otherwise.
    public static let defaultMaxRows = 10_000

    public init(
        model: ModelInfo, limits: GenerationLimits = .standard, styles: StyleLibrary = .builtIn,
        maxRows: Int = BatchValidation.defaultMaxRows, runner: String, images: ImageResolver? = nil
    ) {
        self.images = images
        self.model = model
        self.limits = limits
        self.styles = styles
        self.maxRows = maxRows
        self.runner = runner
    }

    /// Validates a CSV document: `read(csv:maxRows:)` with this validation's row limit, then `check(_:)`.
    public func check(csv text: String) throws(ReelError) -> [BatchVerdict] {
        try check(Self.read(csv: text, maxRows: maxRows))
    }

    /// Validates rows already read: the row count first (a whole-batch error), then every row on its own.
    public func check(_ rows: [BatchInputRow]) throws(ReelError) -> [BatchVerdict] {
        try checkCount(rows.count)
        return rows.map { input in
            do throws(ReelError) {
                var row = try input.fields.get()
                try resolveImages(&row)
                let spec = try Validation.resolve(
                    row, model: model, limits: limits, styles: styles, loras: loras, runner: runner)
                return BatchVerdict(row: input.row, priority: row.priority ?? 0, result: .success(spec))
            } catch {
                return BatchVerdict(row: input.row, priority: 0, result: .failure(error))
            }
        }
    }

    /// Reads the row's images through `images`.
    func resolveImages(_ row: inout SpecRow) throws(ReelError) {
        for (name, field) in [(row.imageName, "image"), (row.lastImageName, "last_image")] {
            guard let name else { continue }
            guard let images else { throw .invalid(field, "\(runner) takes no images in a batch") }
            let reference = try images(name, field)
            if field == "image" { row.request.image = reference } else { row.request.lastImage = reference }
        }
    }

    /// Refuses a batch with no rows or more than `maxRows`.
    public func checkCount(_ count: Int) throws(ReelError) {
        guard count > 0 else { throw .invalid("jobs", "the batch has no rows") }
        guard count <= maxRows else { throw .invalid("jobs", "the batch has \(count) rows; the limit is \(maxRows)") }
    }

    /// Reads a CSV document into rows of typed fields. Throws for the file as a whole: text no parser should
    /// normalise (see `CombiningMarks`), a CSV that cannot be read, a header without `prompt` or with an unknown
    /// column, more than `maxRows` rows (nil: no limit here). A row with more fields than the header, or a field
    /// of the wrong form, is that row's error.
    public static func read(csv text: String, maxRows: Int?) throws(ReelError) -> [BatchInputRow] {
        let run = CombiningMarks.longestRun(in: text.utf8, encoding: .utf8)
        if run > CombiningMarks.maxRun { throw CombiningMarks.error(field: "body", run: run) }
        let table: CSVTable
        do {
            table = try CSVReader.parse(text, maxRows: maxRows)
        } catch let error where error.tooManyRows {
            let limit = maxRows ?? 0
            throw .invalid("jobs", "the batch has more than \(limit) rows; the limit is \(limit): split it")
        } catch {
            throw ReelError(.invalidValue, field: "row \(error.row)", "the CSV cannot be read: \(error.message)")
        }
        guard table.header.contains("prompt") else {
            throw .invalid(
                "prompt", "the CSV header has no 'prompt' column; it has \(table.header.joined(separator: ", "))")
        }
        for name in table.header where !SpecFields.known.contains(name) {
            throw .invalid(
                String(name.unicodeScalars.prefix(60)),
                "unknown column \(name.quotedForMessage(limit: 60)); the known columns are "
                    + SpecFields.known.joined(separator: ", "))
        }
        return table.rows.map { row in
            var fields: [String: String] = [:]
            for (index, name) in table.header.enumerated() where index < row.fields.count {
                fields[name] = row.fields[index]
            }
            do throws(ReelError) {
                guard row.fields.count <= table.header.count else {
                    throw .invalid(
                        "row", "the row has \(row.fields.count) fields but the header has \(table.header.count)")
                }
                return BatchInputRow(row: row.number, fields: .success(try SpecFields.row(from: fields)))
            } catch {
                return BatchInputRow(row: row.number, fields: .failure(error))
            }
        }
    }
}
