/// One CSV of rows that are easy to get wrong, for the tests that check `reel batch` and `POST /v1/batches` give
/// every row the same verdict. The sizes and frames suit the tiny model and the scripted worker.
public enum TrickyBatch {
    /// The header is row 1; the blank line before the last row keeps its number (12), as a spreadsheet's would.
    public static let csv =
        "prompt,size,frames,steps,seed,style,priority,model\r\n"
        + "a red kite,32x32,5,2,1,,,\r\n"  // 2: valid
        + "plus sign,+64x64,5,2,1,,,\r\n"  // 3: a sign is not a digit
        + "trailing x,64x64x,5,2,1,,,\r\n"  // 4: three sides
        + "huge,4096x4096,5,2,1,,,\r\n"  // 5: over the pixel limit
        + "urgent,32x32,5,2,1,,101,\r\n"  // 6: priority out of range
        + "styled,32x32,5,2,1,no-such-style,,\r\n"  // 7: unknown style
        + "seeded,32x32,5,2,12abc,,,\r\n"  // 8: bad seed
        + String(repeating: "a", count: 4001) + ",32x32,5,2,1,,,\r\n"  // 9: prompt too long
        + ",32x32,5,2,1,,,\r\n"  // 10: no prompt
        + "extra,32x32,5,2,1,,,,surplus\r\n"  // 11: more fields than the header
        + "\r\n"  // 12: blank, no row
        + "other model,32x32,5,2,1,,,some-other-model\r\n"  // 13: another model
        + "\"a fox, in snow\",32x32,5,2,2,cinematic,-100,\r\n"  // 14: valid, lowest priority, a style

    /// Each data row's verdict: the column it is rejected for, or nil when it is accepted.
    public static let verdicts: [Int: String?] = [
        2: nil, 3: "size", 4: "size", 5: "size", 6: "priority", 7: "style", 8: "seed", 9: "prompt", 10: "prompt",
        11: "row", 13: "model", 14: nil,
    ]

    public static var acceptedRows: [Int] { verdicts.filter { $0.value == nil }.keys.sorted() }

    /// The rejected rows and their columns.
    public static var rejectedColumns: [Int: String] { verdicts.compactMapValues { $0 } }
}
