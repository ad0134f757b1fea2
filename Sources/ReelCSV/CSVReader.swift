/// Reads CSV as spreadsheets write it (RFC 4180): UTF-8 with or without a byte-order mark, CRLF or LF line ends,
/// quoted fields that hold commas, doubled quotes and line breaks.
public struct CSVTable: Sendable, Equatable {
    /// The header's column names, trimmed.
    public var header: [String]
    /// The data records; blank lines yield no record but keep their row numbers.
    public var rows: [Row]

    public struct Row: Sendable, Equatable {
        /// The record's number as a spreadsheet shows it: the header is row 1, and blank lines count as rows.
        public var number: Int
        public var fields: [String]

        public init(number: Int, fields: [String]) {
            self.number = number
            self.fields = fields
        }
    }

    public init(header: [String], rows: [Row]) {
        self.header = header
        self.rows = rows
    }
}

public struct CSVError: Error, Sendable, Equatable, CustomStringConvertible {
    public var row: Int
    public var message: String
    /// The document has more rows than the reader was told to accept; `row` is the first one past the limit.
    public var tooManyRows = false
    public var description: String { "row \(row): \(message)" }
}

public enum CSVReader {
    /// The most fields one record may have: far more than any batch has columns, few enough that a row of commas
    /// cannot make millions of strings.
    public static let maxFields = 1024

    /// Parses a whole document. The first non-blank record is the header. With `maxRows`, reading stops with a
    /// `tooManyRows` error at the first data row past it, so an oversized document costs no more than the limit.
    public static func parse(_ text: String, maxRows: Int? = nil) throws(CSVError) -> CSVTable {
        let records = try records(in: text, maxRecords: maxRows.map { $0 + 1 })
        guard let first = records.first else { throw CSVError(row: 1, message: "the file is empty; it needs a header row") }
        let header = first.fields.map { $0.trimmingCharacters(in: " \t") }
        // Numbered as a spreadsheet shows them: blank lines are rows too, and the header is row 1.
        let offset = first.number - 1
        let rows = records.dropFirst().map { CSVTable.Row(number: $0.number - offset, fields: $0.fields) }
        return CSVTable(header: header, rows: rows)
    }

    struct Record {
        var number: Int
        var fields: [String]
    }

    static func records(in text: String, maxRecords: Int? = nil) throws(CSVError) -> [Record] {
        var scalars = Substring(text).unicodeScalars[...]
        if scalars.first == "\u{FEFF}" { scalars = scalars.dropFirst() }
        var records: [Record] = []
        var fields: [String] = []
        var field = String.UnicodeScalarView()
        var inQuotes = false
        var fieldWasQuoted = false
        var recordNumber = 1
        var iterator = scalars.makeIterator()
        var lookahead: Unicode.Scalar? = nil

        func next() -> Unicode.Scalar? {
            if let scalar = lookahead {
                lookahead = nil
                return scalar
            }
            return iterator.next()
        }
        func endRecord() throws(CSVError) {
            fields.append(String(field))
            field = String.UnicodeScalarView()
            // A record of one empty unquoted field is a blank line: it keeps its row number but yields no row.
            if !(fields.count == 1 && fields[0].isEmpty && !fieldWasQuoted) {
                if let maxRecords, records.count >= maxRecords {
                    throw CSVError(
                        row: recordNumber, message: "the CSV has more than \(maxRecords - 1) rows", tooManyRows: true)
                }
                records.append(Record(number: recordNumber, fields: fields))
            }
            recordNumber += 1
            fields = []
            fieldWasQuoted = false
        }

        while let scalar = next() {
            if inQuotes {
                if scalar == "\"" {
                    let following = next()
                    if following == "\"" {
                        field.append("\"")
                    } else {
                        inQuotes = false
                        lookahead = following
                    }
                } else {
                    field.append(scalar)
                }
                continue
            }
            switch scalar {
            case "\"":
                if field.isEmpty && !fieldWasQuoted {
                    inQuotes = true
                    fieldWasQuoted = true
                } else {
                    throw CSVError(
                        row: recordNumber,
                        message: "a quote appears inside an unquoted field; quote the whole field and double inner quotes")
                }
            case ",":
                guard fields.count < maxFields else {
                    throw CSVError(row: recordNumber, message: "the row has more than \(maxFields) fields")
                }
                fields.append(String(field))
                field = String.UnicodeScalarView()
                fieldWasQuoted = false
            case "\r":
                let following = next()
                if following != "\n" { lookahead = following }
                try endRecord()
            case "\n":
                try endRecord()
            default:
                if fieldWasQuoted {
                    throw CSVError(row: recordNumber, message: "text follows a closing quote; quote the whole field")
                }
                field.append(scalar)
            }
        }
        if inQuotes {
            throw CSVError(row: recordNumber, message: "a quoted field is never closed; add the closing quote")
        }
        if !field.isEmpty || !fields.isEmpty || fieldWasQuoted { try endRecord() }
        return records
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        let characters = Set(set)
        return String(self.drop(while: { characters.contains($0) }).reversed().drop(while: { characters.contains($0) }).reversed())
    }
}
