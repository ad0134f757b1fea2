import Testing

@testable import ReelCSV

@Suite struct CSVReaderTests {
    @Test func bomCRLFQuotesAndNewlines() throws {
        let text = "\u{FEFF}prompt,seed\r\n\"a fox, in snow\",1\r\n\"she said \"\"hi\"\"\",2\r\n\"two\r\nlines\",3\r\n"
        let table = try CSVReader.parse(text)
        #expect(table.header == ["prompt", "seed"])
        #expect(
            table.rows.map(\.fields) == [["a fox, in snow", "1"], ["she said \"hi\"", "2"], ["two\r\nlines", "3"]])
        #expect(table.rows.map(\.number) == [2, 3, 4])
    }

    @Test func blankLinesAreSkippedAndRowNumbersFollowRecords() throws {
        let table = try CSVReader.parse("prompt\n\none\n\ntwo\n一只狐狸\n")
        #expect(table.rows.map(\.fields) == [["one"], ["two"], ["一只狐狸"]])
        #expect(table.rows.map(\.number) == [3, 5, 6], "as a spreadsheet numbers them: blank lines are rows too")
    }

    @Test func lastLineWithoutNewlineAndEmptyFields() throws {
        let table = try CSVReader.parse("prompt,seed,steps\nfox,,4")
        #expect(table.rows.first?.fields == ["fox", "", "4"])
    }

    @Test func brokenQuotingIsReportedWithItsRow() {
        let unclosed = #expect(throws: CSVError.self) { try CSVReader.parse("prompt\nok\n\"never closed\n") }
        #expect(unclosed?.row == 3)
        let stray = #expect(throws: CSVError.self) { try CSVReader.parse("prompt\nab\"c\n") }
        #expect(stray?.row == 2)
        #expect(throws: CSVError.self) { try CSVReader.parse("") }
    }

    @Test func writerQuotesWhatNeedsIt() throws {
        let line = CSVWriter.line(["plain", "a,b", "say \"x\"", "two\nlines"])
        #expect(line == "plain,\"a,b\",\"say \"\"x\"\"\",\"two\nlines\"\r\n")
        let table = try CSVReader.parse("h1,h2,h3,h4\r\n" + line)
        #expect(table.rows.first?.fields == ["plain", "a,b", "say \"x\"", "two\nlines"])
    }

    @Test func aThousandRows() throws {
        var text = "prompt,seed\n"
        for index in 0..<1000 { text += "\"prompt \(index), with comma\",\(index)\n" }
        let table = try CSVReader.parse(text)
        #expect(table.rows.count == 1000)
        #expect(table.rows.last?.fields == ["prompt 999, with comma", "999"])
        #expect(table.rows.last?.number == 1001)
    }
}

@Suite struct CSVBoundsTests {
    /// A batch body at the size limit made of tiny rows: reading stops at the row limit instead of building
    /// millions of records first.
    @Test func readingStopsPastTheRowLimit() {
        let text = "prompt\n" + String(repeating: "a\n", count: 2_000_000)
        let started = ContinuousClock.now
        let error = #expect(throws: CSVError.self) { try CSVReader.parse(text, maxRows: 10_000) }
        #expect(error?.tooManyRows == true && error?.row == 10_002)
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(throws: Never.self) { try CSVReader.parse("prompt\na\nb\n", maxRows: 2) }
    }

    @Test func aRowOfCommasIsBounded() {
        let error = #expect(throws: CSVError.self) {
            try CSVReader.parse("prompt\n" + String(repeating: ",", count: 1_000_000))
        }
        #expect(error?.row == 2 && error?.message.contains("fields") == true)
    }
}
