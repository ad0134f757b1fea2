import ArgumentParser
import Foundation
import Metrics
import ReelAPI
import ReelBatch
import ReelCSV
import ReelClient
import ReelCore
import ReelScheduler
import ReelServer
import ReelStore
import ReelWorker
import ReelWorkerProtocol

/// `reel batch`: every row of a CSV file becomes a video; bad rows are reported and the rest still run.
///
/// With `--server` the rows go to a running `reel serve`; without, local workers (one per `--devices` slot) run them.
struct BatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Generate one video per row of a CSV file, locally or on a server.",
        discussion: "Columns: \(SpecFields.known.joined(separator: ", ")). Only `prompt` is required."
    )

    @Argument(help: "The CSV file (UTF-8, with or without BOM, CRLF or LF).")
    var file: String

    @OptionGroup var engine: EngineOptions

    @OptionGroup var supervision: LocalRunOptions

    @Option(help: "Send the batch to this server instead of running it here.")
    var server: String?

    @Option(help: "Without --server: the local slots, as for `reel serve` (auto, cpu, cpu,cpu, cuda:0,cuda:1, …).")
    var devices: String?

    @Option(
        help: "Without --server: how the slots use the devices, as for `reel serve` (replica, split, parallel:K, auto)."
    )
    var placement = "replica"

    @Option(help: "An API key for --server (default $REEL_API_KEY).")
    var apiKey: String?

    @Flag(help: "With --server: wait for every job, download the videos and write the report.")
    var wait = false

    @Flag(help: "With --server: queue nothing unless every row is valid.")
    var atomic = false

    @Option(help: "Directory for the videos (one folder per row, named by row and prompt) and report.csv.")
    var out: String = "out"

    @OptionGroup var styleFile: StyleFileOption

    @OptionGroup var loraLibrary: LoRALibraryOptions

    struct PlannedRow {
        var row: Int
        var spec: GenerationSpec
        var priority: Int
        /// The row's folder name in the output directory, also its job id.
        var directory: String
    }

    func run() async throws {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw ValidationError("cannot read \(file) as UTF-8 text: \(error.localizedDescription)")
        }
        let library = try loadStyles()
        if let server {
            try await runOnServer(text: text, server: server)
        } else {
            try await runLocally(text: text, styles: library)
        }
    }

    private func loadStyles() throws -> StyleLibrary {
        try styleFile.library(dataDirectory: engine.resolvedDataDir)
    }

    /// A problem with the whole file, as the command reports it.
    private func fileError(_ error: ReelError) -> ValidationError {
        ValidationError("\(file): \(error)")
    }

    /// Prints a rejected row by row and column, and returns its line of the report.
    private func reject(row: Int, _ error: ReelError) -> [String] {
        printError("row \(row), column \(error.field ?? "?"): \(error.message)")
        return BatchReport.rejectedLine(row: row, column: error.field, message: error.message)
    }

    // MARK: - Local

    /// Runs the valid rows on this machine's slots (`--devices`), one warm worker each, with the same
    /// scheduler, retries and stall detection as `reel serve`, over a queue that lives as long as the command.
    ///
    /// The rows are checked as `POST /v1/batches` checks them (`BatchValidation`, with the standard limits): a row
    /// the server would refuse is refused here too.
    private func runLocally(text: String, styles: StyleLibrary) async throws {
        let model = try engine.resolveModel()
        let outDir = absolutePath(out)
        // A row's image is a path relative to the CSV file (or absolute), read into the data directory's image store.
        let images = ImageStore(dataDirectory: engine.resolvedDataDir)
        let csvFolder = URL(fileURLWithPath: absolutePath(file)).deletingLastPathComponent()
        var validation = BatchValidation(
            model: model, styles: styles, runner: "reel batch",
            images: { name, field throws(ReelError) in
                let path = name.hasPrefix("/") ? name : csvFolder.appendingPathComponent(name).path
                return try images.put(file: path, field: field)
            })
        validation.loras = try loraLibrary.catalog(dataDirectory: engine.resolvedDataDir)
        let verdicts: [BatchVerdict]
        do {
            verdicts = try validation.check(csv: text)
        } catch {
            throw fileError(error)
        }
        var report: [Int: [String]] = [:]
        var planned: [PlannedRow] = []
        for verdict in verdicts {
            switch verdict.result {
            case .success(let spec):
                planned.append(
                    PlannedRow(
                        row: verdict.row, spec: spec, priority: verdict.priority,
                        directory: String(format: "%03d-", verdict.row) + Slug.make(spec.userPrompt ?? spec.prompt)))
            case .failure(let error):
                report[verdict.row] = reject(row: verdict.row, error)
            }
        }
        let total = verdicts.count
        printError("\(planned.count) of \(total) rows are valid")
        try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)

        if !planned.isEmpty {
            let plan: PlacementPlan
            do {
                plan = try PlacementPlanner.resolve(
                    placement: placement,
                    devices: devices ?? (engine.device == "auto" ? "auto" : engine.resolvedDevice),
                    model: model, modelPath: engine.modelArgument, memoryBudgetGiB: engine.memoryBudget,
                    queueDepth: planned.count)
            } catch {
                throw ValidationError("\(error)")
            }
            printError("running on " + plan.slots.map(\.device).joined(separator: ", "))
            if plan.chosen != .replica || !plan.notes.isEmpty { plan.lines.forEach(printError) }
            // The job id is the row's folder name, so each job writes straight into out/<row>-<slug>/.
            let jobs = planned.map { NewJob(id: $0.directory, spec: $0.spec, priority: $0.priority) }
            let display = BatchDisplay(total: jobs.count)
            var queue = LocalQueue(engine: engine, options: supervision, plan: plan, outputRoot: outDir)
            queue.loras = loraLibrary
            let finished =
                try await queue
                .run(jobs) {
                    event, workers in display.update(event, workers: workers)
                }
            display.finish()
            for item in planned {
                guard let job = finished[item.directory] else { continue }
                report[item.row] = BatchReport.line(row: item.row, jobID: job.id, job: job)
                if job.state != .succeeded {
                    printError("row \(item.row) \(job.state.rawValue): \(job.errorMessage ?? "")")
                }
            }
        }

        let reportPath = outDir + "/report.csv"
        try BatchReport.csv(lines: report).write(toFile: reportPath, atomically: true, encoding: .utf8)
        let succeeded = report.values.filter { $0[2] == "succeeded" }.count
        print("\(succeeded) of \(total) videos in \(outDir); report: \(reportPath)")
        if succeeded < total { throw ExitCode(1) }
    }

    // MARK: - On a server

    /// The CSV with every `image` and `last_image` path (relative to the CSV, or absolute) replaced by the id the server
    /// gave the file on upload (each file uploaded once). A row whose image cannot be read or is refused becomes a
    /// blank record, so the server skips it and every other row keeps its number; its error is returned by row.
    /// Ids and `data:` URLs are sent as they are.
    private func uploadingImages(
        _ text: String, client: ReelAPIClient
    ) async throws -> (csv: String, unreadable: [Int: ReelError]) {
        guard let table = try? CSVReader.parse(text, maxRows: nil) else { return (text, [:]) }
        let columns = table.header.indices.filter { ["image", "last_image"].contains(table.header[$0]) }
        guard !columns.isEmpty else { return (text, [:]) }
        let folder = URL(fileURLWithPath: absolutePath(file)).deletingLastPathComponent()
        var uploaded: [String: String] = [:]
        var unreadable: [Int: ReelError] = [:]
        var lines = [CSVWriter.line(table.header)]
        var next = 2
        for row in table.rows {
            while next < row.number {
                lines.append("\r\n")
                next += 1
            }
            next = row.number + 1
            var fields = row.fields
            do {
                for column in columns where column < fields.count {
                    let name = fields[column].trimmingCharacters(in: .whitespaces)
                    guard !name.isEmpty, !name.hasPrefix(ImageReference.idPrefix), !name.lowercased().hasPrefix("data:")
                    else { continue }
                    let path = name.hasPrefix("/") ? name : folder.appendingPathComponent(name).path
                    if let id = uploaded[path] {
                        fields[column] = id
                        continue
                    }
                    let field = table.header[column]
                    guard let bytes = FileManager.default.contents(atPath: path) else {
                        throw ReelError.invalid(field, "\(path.quotedForMessage(limit: 400)) is not a readable file")
                    }
                    do {
                        let image = try await client.uploadImage(Array(bytes))
                        uploaded[path] = image.id
                        fields[column] = image.id
                    } catch let error as APIError where (400..<500).contains(error.status) {
                        throw ReelError.invalid(field, "\(name): \(error.message)")
                    }
                }
                lines.append(CSVWriter.line(fields))
            } catch let error as ReelError {
                unreadable[row.number] = error
                lines.append("\r\n")
            }
        }
        return (lines.joined(), unreadable)
    }

    private func runOnServer(text: String, server: String) async throws {
        // The server knows its model and limits and checks every row with them (`BatchValidation`, as a local run
        // does); here only the file and each field's form are checked, the row limit left to the server.
        let rows: [BatchInputRow]
        do {
            rows = try BatchValidation.read(csv: text, maxRows: nil)
        } catch {
            throw fileError(error)
        }
        var rejectedLocally = Set<Int>()
        for input in rows {
            guard case .failure(let error) = input.fields else { continue }
            _ = reject(row: input.row, error)
            rejectedLocally.insert(input.row)
        }
        if !rejectedLocally.isEmpty && atomic {
            printError("\(rejectedLocally.count) rows are invalid; nothing was sent (--atomic)")
            throw ExitCode(1)
        }
        let client = ReelAPIClient(
            baseURL: server, apiKey: apiKey ?? ProcessInfo.processInfo.environment["REEL_API_KEY"])
        try await reportingErrors {
            // The rows' images are files here: each is uploaded once and the row names it by its id.
            let (csv, unreadable) = try await uploadingImages(text, client: client)
            for (row, error) in unreadable.sorted(by: { $0.key < $1.key }) {
                _ = reject(row: row, error)
                rejectedLocally.insert(row)
            }
            if !unreadable.isEmpty && atomic {
                printError("\(unreadable.count) rows have images that were refused; nothing was sent (--atomic)")
                throw ExitCode(1)
            }
            let submission = try await client.submitBatch(csv: csv, atomic: atomic)
            for rejected in submission.rejected where !rejectedLocally.contains(rejected.row) {
                printError("row \(rejected.row), column \(rejected.column ?? "?"): \(rejected.message)")
            }
            guard let id = submission.id, submission.queued else {
                printError("nothing was queued")
                throw ExitCode(1)
            }
            print(id)
            printError(
                "batch \(id): \(submission.accepted.count) jobs queued, \(submission.rejected.count) rows rejected")
            guard wait else { return }
            let outDir = absolutePath(out)
            try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
            let prompts = Dictionary(
                uniqueKeysWithValues: rows.map { row in (row.row, (try? row.fields.get())?.request.prompt ?? "") })
            let (status, videos) = try await follow(batch: id, client: client, outDir: outDir, prompts: prompts)
            var report = try await client.batchReport(id)
            if let table = try? CSVReader.parse(report, maxRows: nil) {
                var lines: [Int: [String]] = [:]
                for row in table.rows {
                    guard let number = Int(row.fields.first ?? "") else { continue }
                    var fields = row.fields
                    // The output is the file here, not the server's path to it.
                    if let video = videos[number], let column = BatchReport.header.firstIndex(of: "output"),
                        column < fields.count
                    {
                        fields[column] = video
                    }
                    lines[number] = fields
                }
                // The rows whose images were refused here never reached the server: their lines join its report.
                for (row, error) in unreadable {
                    lines[row] = BatchReport.rejectedLine(row: row, column: error.field, message: error.message)
                }
                report = BatchReport.csv(lines: lines)
            }
            try report.write(toFile: outDir + "/report.csv", atomically: true, encoding: .utf8)
            let succeeded = status.count(.succeeded)
            let total = status.total + unreadable.count
            print("\(succeeded) of \(total) videos in \(outDir); report: \(outDir)/report.csv")
            if succeeded < total { throw ExitCode(1) }
        }
    }

    /// Shows the batch's progress and one line per busy slot, and downloads everything each job made as soon as it
    /// is done: its video, its job.json and, when it kept them, its PNG frames (`frames/000001.png`, … as a local
    /// batch writes them). Returns the batch and each downloaded row's video path here.
    private func follow(
        batch id: String, client: ReelAPIClient, outDir: String, prompts: [Int: String]
    ) async throws
        -> (BatchResource, [Int: String])
    {
        var downloaded = Set<String>()
        var videos: [Int: String] = [:]
        let interactive = isatty(STDERR_FILENO) != 0
        var lastLines = 0
        while true {
            let status = try await client.batch(id)
            for row in status.jobs where row.state == .succeeded && !downloaded.contains(row.id) {
                let directory = outDir + "/" + String(format: "%03d-", row.row) + Slug.make(prompts[row.row] ?? "")
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                try await client.downloadVideo(row.id, to: directory + "/video.mp4")
                try? await client.downloadMetadata(row.id, to: directory + "/job.json")
                if let count = try await client.job(row.id).outputs?.frameCount, count > 0 {
                    let frames = directory + "/frames"
                    try FileManager.default.createDirectory(atPath: frames, withIntermediateDirectories: true)
                    for number in 1...count {
                        let name = JobOutputs.frameName(number) + ".png"
                        try await client.downloadFrame(row.id, number: number, to: frames + "/" + name)
                    }
                }
                downloaded.insert(row.id)
                videos[row.row] = directory + "/video.mp4"
            }
            let finished = JobState.allCases.filter(\.isTerminal).reduce(0) { $0 + status.count($1) }
            let accepted = status.jobs.count
            var lines = [progressLine(finished: finished, total: accepted, status: status)]
            // The slot lines only show what the slots do: a listing this client cannot read (a step no integer
            // holds, say) shows none rather than ending the batch.
            lines += Self.slotLines((try? await client.workers()) ?? [], rows: status.jobs)
            if interactive {
                let clear = lastLines > 0 ? "\u{1B}[\(lastLines)A" : ""
                FileHandle.standardError.write(
                    Data((clear + lines.map { "\u{1B}[K" + $0 }.joined(separator: "\n") + "\n").utf8))
                lastLines = lines.count
            }
            if status.done {
                if !interactive { printError(lines[0]) }
                return (status, videos)
            }
            try await Task.sleep(for: .seconds(1))
        }
    }

    /// One line per slot of the server's `/v1/workers` answer; a slot on one of this batch's jobs names its row,
    /// stage and step.
    static func slotLines(_ workers: [WorkerResource], rows: [BatchResource.Row]) -> [String] {
        workers.map { worker in
            var line = "  \(worker.slot): \(worker.state)"
            if let job = worker.job, let row = rows.first(where: { $0.id == job }) {
                line += " row \(row.row)"
                if let stage = worker.stage, let step = worker.step, let total = worker.totalSteps {
                    line += " \(stage) \(step)/\(total)"
                }
            }
            return line
        }
    }

    private func progressLine(finished: Int, total: Int, status: BatchResource) -> String {
        var line = "[" + BatchDisplay.bar(finished, total) + "] " + "\(finished)/\(total)"
        if let rate = status.videosPerHour { line += String(format: ", %.0f videos/h", rate) }
        if let left = status.secondsLeft, !status.done { line += String(format: ", %.0f s left", left) }
        return line
    }
}
