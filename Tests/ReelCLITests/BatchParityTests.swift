import Foundation
import ReelCSV
import ReelClient
import ReelTestSupport
import Testing

/// `reel batch FILE` run here and `POST /v1/batches` on a `reel serve` check a batch with the same validation: one
/// CSV of tricky rows through both gives the same rows rejected, for the same columns and reasons, and the same rows
/// accepted.
@Suite struct BatchParityTests {
    /// A rejected row as `reel batch` prints it: `row N, column C: message`.
    static func rejectedRows(in stderr: String) -> [Int: (column: String, message: String)] {
        var rows: [Int: (column: String, message: String)] = [:]
        for line in stderr.split(separator: "\n") where line.hasPrefix("row ") {
            guard let comma = line.firstIndex(of: ","),
                let row = Int(line[line.index(line.startIndex, offsetBy: 4)..<comma]),
                line[comma...].hasPrefix(", column "), let colon = line[comma...].range(of: ": ")
            else { continue }
            let column = line[line.index(comma, offsetBy: ", column ".count)..<colon.lowerBound]
            rows[row] = (String(column), String(line[colon.upperBound...]))
        }
        return rows
    }

    @Test func theCLIAndTheServerGiveEveryRowOfOneCSVTheSameVerdict() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            try TrickyBatch.csv.write(
                to: directory.appendingPathComponent("tricky.csv"), atomically: true, encoding: .utf8)

            // Locally: the rejected rows are printed by row and column, the others run on the scripted worker.
            let run = try TestSupport.runReel(
                ["batch", "tricky.csv", "--model", "tiny", "--devices", "cpu", "--out", "out"], in: directory,
                worker: .scripted)
            #expect(run.status == 1, "rows were rejected, so the batch is not a full success: \(run.stderr)")
            let local = Self.rejectedRows(in: run.stderr)
            let report = try CSVReader.parse(
                String(contentsOf: directory.appendingPathComponent("out/report.csv"), encoding: .utf8))
            let localAccepted = report.rows.filter { $0.fields[2] != "rejected" }.compactMap { Int($0.fields[0]) }
            #expect(report.rows.filter { $0.fields[2] == "succeeded" }.count == TrickyBatch.acceptedRows.count)

            // On a server.
            let server = try ServerProcess(devices: "cpu", dataDirectory: directory.appendingPathComponent("server"))
            defer { server.stop() }
            try await server.waitUntilReady()
            let submission = try await server.client.submitBatch(csv: TrickyBatch.csv)
            #expect(submission.queued)
            let remote = Dictionary(uniqueKeysWithValues: submission.rejected.map { ($0.row, $0) })

            #expect(local.mapValues(\.column) == TrickyBatch.rejectedColumns, "\(run.stderr)")
            #expect(remote.mapValues { $0.column ?? "?" } == TrickyBatch.rejectedColumns)
            #expect(localAccepted.sorted() == TrickyBatch.acceptedRows)
            #expect(submission.accepted.map(\.row).sorted() == TrickyBatch.acceptedRows)
            for (row, rejected) in local where rejected.column != "model" {
                // The same words too; only the runner a wrong model is refused by differs.
                #expect(remote[row]?.message == rejected.message, "row \(row)")
            }
            #expect(local[13]?.message.hasPrefix("reel batch runs the model 'tiny'") == true)
            #expect(remote[13]?.message.hasPrefix("this server runs the model 'tiny'") == true)
        }
    }
}
