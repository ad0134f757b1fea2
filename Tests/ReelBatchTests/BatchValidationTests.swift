import ReelBatch
import ReelCore
import ReelTestSupport
import Testing

/// The one batch validation `reel batch` and `POST /v1/batches` share, on its own: text in, verdicts out.
@Suite struct BatchValidationTests {
    let validation = BatchValidation(model: try! ModelCatalog.resolve("tiny"), runner: "this test")

    @Test func everyTrickyRowGetsItsVerdictByRowAndColumn() throws {
        let verdicts = try validation.check(csv: TrickyBatch.csv)
        #expect(verdicts.map(\.row) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14], "the blank line is no row")
        for verdict in verdicts {
            let expected = try #require(TrickyBatch.verdicts[verdict.row])
            #expect(verdict.error?.field == expected, "row \(verdict.row): \(String(describing: verdict.error))")
        }
        let fox = try #require(verdicts.last?.spec)
        #expect(fox.userPrompt == "a fox, in snow" && fox.style == "cinematic" && fox.seed == 2)
        #expect(verdicts.last?.priority == -100)
        #expect(verdicts[0].spec?.width == 32 && verdicts[0].spec?.frames == 5)
        // Each message says what was wrong and what to do.
        func message(_ row: Int) -> String { verdicts.first { $0.row == row }?.error?.message ?? "" }
        #expect(message(3).contains("WIDTHxHEIGHT"))
        #expect(message(5).contains("pixels per frame"))
        #expect(message(6).contains("between -100 and 100, not 101"))
        #expect(message(11) == "the row has 9 fields but the header has 8")
        #expect(message(13).hasPrefix("this test runs the model 'tiny', not 'some-other-model'"))
        #expect(verdicts.filter { $0.error != nil }.allSatisfy { $0.priority == 0 })
    }

    @Test func aProblemWithTheWholeFileRejectsTheFile() {
        func fileError(_ text: String, maxRows: Int = 10) -> ReelError? {
            var validation = validation
            validation.maxRows = maxRows
            do {
                _ = try validation.check(csv: text)
                return nil
            } catch {
                return error
            }
        }
        #expect(fileError("size\n32x32\n")?.field == "prompt")
        let unknown = fileError("prompt,colour\nfox,red\n")
        #expect(unknown?.field == "colour" && unknown?.message.contains("unknown column 'colour'") == true)
        #expect(fileError("prompt\n\"never closed\n")?.field == "row 2")
        #expect(fileError("")?.field == "row 1")
        #expect(fileError("prompt\n")?.message == "the batch has no rows")
        let tooMany = fileError("prompt\na\nb\nc\n", maxRows: 2)
        #expect(tooMany?.field == "jobs" && tooMany?.message.contains("more than 2 rows") == true)
        #expect(fileError("prompt\na\nb\n", maxRows: 2) == nil)
        let marks = "prompt\nfox" + String(repeating: "\u{0301}", count: 200) + "\n"
        #expect(fileError(marks)?.field == "body")
    }

    @Test func rowsReadElsewhereAreCheckedLikeACSVsRows() throws {
        let rows = [
            BatchInputRow(row: 1, fields: .success(SpecRow(request: GenerationRequest(prompt: "a"), priority: 7))),
            BatchInputRow(row: 2, fields: .success(SpecRow(request: GenerationRequest(prompt: "b"), priority: -101))),
            BatchInputRow(row: 3, fields: .failure(.invalid("steps", "steps must be a whole number"))),
            BatchInputRow(row: 4, fields: .success(SpecRow(request: GenerationRequest(prompt: "c", size: "64x64x")))),
        ]
        let verdicts = try validation.check(rows)
        #expect(verdicts.map(\.priority) == [7, 0, 0, 0])
        #expect(verdicts.map(\.error?.field) == [nil, "priority", "steps", "size"])
        #expect(throws: ReelError.self) { try validation.check([]) }
    }

    @Test func readingAloneChecksTheFormButLeavesModelAndLimitsToWhoRunsTheRows() throws {
        let rows = try BatchValidation.read(csv: TrickyBatch.csv, maxRows: nil)
        let failed = rows.compactMap { row -> Int? in
            guard case .failure = row.fields else { return nil }
            return row.row
        }
        // Only a field of the wrong form (the seed) or a row of too many fields fails before the model is known.
        #expect(failed == [8, 11])
        #expect(try rows[0].fields.get().request.prompt == "a red kite")
    }
}
