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
        guard let first = records.first else {
            throw CSVError(row: 1, message: "the file is empty; it needs a header row")
        }
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
        var text = text
        // The structure (commas, quotes, line ends) is ASCII, so the text is read as UTF-8 bytes and each field is
        // copied out once: linear, and without a String append per character.
        let result: Result<[Record], CSVError> = text.withUTF8 { bytes in
            Result { () throws(CSVError) -> [Record] in try records(in: bytes, maxRecords: maxRecords) }
        }
        return try result.get()
    }

    private static func records(in bytes: UnsafeBufferPointer<UInt8>, maxRecords: Int?) throws(CSVError) -> [Record] {
        let quote = UInt8(ascii: "\""), comma = UInt8(ascii: ","), cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n")
        var index = 0
        if bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF { index = 3 }
        let count = bytes.count
        var records: [Record] = []
        var fields: [String] = []
        var recordNumber = 1

        func endRecord(_ fieldWasQuoted: Bool) throws(CSVError) {
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
        }
        func string(_ start: Int, _ end: Int) -> String {
            String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
        }

        while true {
            // One field, starting at `index`.
            var field: String
            var quoted = false
            if index < count && bytes[index] == quote {
                quoted = true
                index += 1
                field = ""
                var start = index
                while true {
                    guard let next = (index < count ? bytes[index...] : bytes[count...]).firstIndex(of: quote) else {
                        throw CSVError(
                            row: recordNumber, message: "a quoted field is never closed; add the closing quote")
                    }
                    field += string(start, next)
                    if next + 1 < count && bytes[next + 1] == quote {
                        field += "\""
                        index = next + 2
                        start = index
                    } else {
                        index = next + 1
                        break
                    }
                }
                if index < count, bytes[index] != comma, bytes[index] != cr, bytes[index] != lf {
                    throw CSVError(row: recordNumber, message: "text follows a closing quote; quote the whole field")
                }
            } else {
                let start = index
                while index < count, bytes[index] != comma, bytes[index] != cr, bytes[index] != lf {
                    if bytes[index] == quote {
                        throw CSVError(
                            row: recordNumber,
                            message:
                                "a quote appears inside an unquoted field; quote the whole field and double inner quotes"
                        )
                    }
                    index += 1
                }
                field = string(start, index)
            }
            guard fields.count < maxFields else {
                throw CSVError(row: recordNumber, message: "the row has more than \(maxFields) fields")
            }
            fields.append(field)
            // What ends the field: a comma (another follows), a line end, or the end of the text.
            if index >= count {
                if !(fields.count == 1 && fields[0].isEmpty && !quoted) || quoted { try endRecord(quoted) }
                return records
            }
            let separator = bytes[index]
            index += 1
            if separator == comma { continue }
            if separator == cr && index < count && bytes[index] == lf { index += 1 }
            try endRecord(quoted)
            if index >= count { return records }
        }
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        let characters = Set(set)
        return String(
            self.drop(while: { characters.contains($0) }).reversed().drop(while: { characters.contains($0) }).reversed()
        )
    }
}
