import ArgumentParser
import Foundation
import ReelCSV
import ReelCore
import ReelWorker
import ReelWorkerProtocol

/// `reel batch`: every row of a CSV file becomes a video; bad rows are reported and the rest still run.
struct BatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Generate one video per row of a CSV file with a local worker.",
        discussion: "Columns: \(SpecFields.known.joined(separator: ", ")). Only `prompt` is required."
    )

    @Argument(help: "The CSV file (UTF-8, with or without BOM, CRLF or LF).")
    var file: String

    @OptionGroup var engine: EngineOptions

    @Option(help: "Directory for the videos (one folder per row) and report.csv.")
    var out: String = "out"

    struct PlannedRow {
        var row: Int
        var spec: GenerationSpec
        var directory: String
    }

    func run() async throws {
        let model = try engine.resolveModel()
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw ValidationError("cannot read \(file) as UTF-8 text: \(error.localizedDescription)")
        }
        let table: CSVTable
        do {
            table = try CSVReader.parse(text)
        } catch {
            throw ValidationError("\(file): \(error)")
        }
        guard table.header.contains("prompt") else {
            throw ValidationError("\(file): the header has no 'prompt' column; found \(table.header.joined(separator: ", "))")
        }
        for name in table.header where !SpecFields.known.contains(name) {
            throw ValidationError(
                "\(file): unknown column '\(name)'; the known columns are \(SpecFields.known.joined(separator: ", "))")
        }

        // Validate every row before any model loads.
        let outDir = absolutePath(out)
        var planned: [PlannedRow] = []
        var report: [Int: [String]] = [:]
        for row in table.rows {
            var fields: [String: String] = [:]
            for (index, name) in table.header.enumerated() where index < row.fields.count {
                fields[name] = row.fields[index]
            }
            do throws(ReelError) {
                guard row.fields.count <= table.header.count else {
                    throw ReelError.invalid(
                        "row", "the row has \(row.fields.count) fields but the header has \(table.header.count)")
                }
                let spec = try Validation.resolve(try SpecFields.request(from: fields), model: model)
                let name = String(format: "%03d-", row.number) + Slug.make(spec.prompt)
                planned.append(PlannedRow(row: row.number, spec: spec, directory: outDir + "/" + name))
            } catch {
                printError("row \(row.number), column \(error.field ?? "?"): \(error.message)")
                report[row.number] = [
                    String(row.number), "", "rejected", "", "", "", "", "", "", "\(error.field ?? ""): \(error.message)",
                ]
            }
        }
        printError("\(planned.count) of \(table.rows.count) rows are valid")
        try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)

        if !planned.isEmpty {
            let results = try await LocalRunner(engine: engine).run { connection, events in
                var lines: [Int: [String]] = [:]
                for (index, item) in planned.enumerated() {
                    let label = "[\(index + 1)/\(planned.count)] row \(item.row)"
                    let display = ProgressDisplay(label: label)
                    let request = WorkerRequest.Generate(
                        spec: item.spec, job: "row-\(item.row)", outDir: item.directory,
                        metadata: ["row": .number(Double(item.row)), "batch_file": .string(absolutePath(file))])
                    do throws(WorkerFailure) {
                        let result = try await connection.generate(request, events: &events) { display.update($0) }
                        display.finish()
                        printError("\(label): \(result.outputs.video)")
                        let seconds = result.seconds
                        lines[item.row] = [
                            String(item.row), request.job, "succeeded", String(item.spec.seed), result.outputs.video,
                            format(seconds.textEncoding), format(seconds.denoising), format(seconds.vaeDecode),
                            format(seconds.encoding), "",
                        ]
                    } catch {
                        display.finish()
                        guard case .failed(let failure) = error else { throw error }
                        printError("\(label) failed: \(failure.code): \(failure.message)")
                        lines[item.row] = [
                            String(item.row), request.job, "failed", String(item.spec.seed), "", "", "", "", "",
                            "\(failure.code): \(failure.message)",
                        ]
                    }
                }
                return lines
            }
            report.merge(results) { _, new in new }
        }

        var csv = CSVWriter.line([
            "row", "job", "state", "seed", "output", "text_encoding_s", "denoising_s", "vae_decode_s", "encoding_s",
            "error",
        ])
        for row in report.keys.sorted() { csv += CSVWriter.line(report[row]!) }
        let reportPath = outDir + "/report.csv"
        try csv.write(toFile: reportPath, atomically: true, encoding: .utf8)
        let succeeded = report.values.filter { $0[2] == "succeeded" }.count
        print("\(succeeded) of \(table.rows.count) videos in \(outDir); report: \(reportPath)")
        if succeeded < table.rows.count { throw ExitCode(1) }
    }

    private func format(_ value: Double) -> String { String(format: "%.3f", value) }
}
