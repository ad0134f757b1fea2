import ArgumentParser
import Foundation
import ReelClient
import ReelCore
import ReelStore
import ReelWorkerProtocol

/// Options shared by the commands that talk to a running `reel serve`.
struct ServerOptions: ParsableArguments {
    @Option(help: "The server's URL (default $REEL_SERVER or http://127.0.0.1:8188).")
    var server: String?

    @Option(help: "An API key, when the server requires one (default $REEL_API_KEY).")
    var apiKey: String?

    var client: ReelAPIClient {
        let environment = ProcessInfo.processInfo.environment
        return ReelAPIClient(
            baseURL: server ?? environment["REEL_SERVER"] ?? "http://127.0.0.1:8188",
            apiKey: apiKey ?? environment["REEL_API_KEY"])
    }
}

/// Turns API and connection errors into one readable line and a failing exit status.
func reportingErrors<R>(_ body: () async throws -> R) async throws -> R {
    do {
        return try await body()
    } catch let error as APIError {
        printError("error: \(error)")
        throw ExitCode(1)
    } catch let error as ExitCode {
        throw error
    } catch {
        printError("error: could not reach the server: \(error)")
        throw ExitCode(1)
    }
}

struct SubmitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit", abstract: "Queue one video on a running server.")

    @OptionGroup var serverOptions: ServerOptions
    @Option(help: "What the video shows.") var prompt: String
    @Option(help: "What the video should avoid.") var negativePrompt: String?
    @Option(help: "WIDTHxHEIGHT.") var size: String?
    @Option(help: "Frames, 4n+1.") var frames: Int?
    @Option(help: "Duration in seconds.") var seconds: Double?
    @Option(help: "Denoising steps.") var steps: Int?
    @Option(help: "Guidance scale.") var guidance: Double?
    @Option(help: "Random seed.") var seed: Int?
    @Option(help: "Higher runs first.") var priority: Int?
    @Option(help: "A prompt style; see `reel styles`.") var style: String?
    @Option(help: "Multiply the frame rate by 2 or 4 with interpolation.") var interpolate: Int?
    @Flag(help: "Also keep every frame as PNG.") var pngFrames = false
    @Option(help: "Makes retries of this submission safe: the same key returns the same job.") var idempotencyKey: String?
    @Flag(help: "Wait until the job ends, showing its progress.") var wait = false
    @Option(help: "With --wait: download the video to this file.") var out: String?

    func run() async throws {
        var spec: [String: JSONValue] = ["prompt": .string(prompt)]
        if let negativePrompt { spec["negative_prompt"] = .string(negativePrompt) }
        if let size { spec["size"] = .string(size) }
        if let frames { spec["frames"] = .number(Double(frames)) }
        if let seconds { spec["seconds"] = .number(seconds) }
        if let steps { spec["steps"] = .number(Double(steps)) }
        if let guidance { spec["guidance"] = .number(guidance) }
        if let seed { spec["seed"] = .number(Double(seed)) }
        if let priority { spec["priority"] = .number(Double(priority)) }
        if pngFrames { spec["png_frames"] = .bool(true) }
        if let style { spec["style"] = .string(style) }
        if let interpolate { spec["interpolate"] = .number(Double(interpolate)) }
        let client = serverOptions.client
        try await reportingErrors {
            let (job, _) = try await client.submit(spec, idempotencyKey: idempotencyKey)
            print(job.id)
            guard wait else { return }
            let final = try await follow(job.id, client: client)
            if final.state == "succeeded", let out {
                try await client.downloadVideo(job.id, to: absolutePath(out))
                printError("video: \(absolutePath(out))")
            }
            if final.state != "succeeded" { throw ExitCode(1) }
        }
    }
}

/// Shows a job's progress from the event stream until it ends; returns its final state.
func follow(_ id: String, client: ReelAPIClient) async throws -> JobSummary {
    let display = ProgressDisplay(label: id)
    defer { display.finish() }
    let stream = client.events(job: id)
    // The job may have ended before the stream was open: look once first.
    var (job, _) = try await client.job(id)
    if ["succeeded", "failed", "cancelled"].contains(job.state) { return job }
    for try await message in stream {
        if message.event == "progress", let data = message.data.data(using: .utf8),
            let event = try? JSONDecoder().decode(EventLine.self, from: data), let progress = event.progress
        {
            display.update(JobProgress(stage: progress.stage, step: progress.step, total: progress.total))
        }
        if ["succeeded", "failed", "cancelled"].contains(message.event) { break }
    }
    (job, _) = try await client.job(id)
    display.finish()
    printError("\(id): \(job.state)" + (job.error?.message.map { ": \($0)" } ?? ""))
    return job
}

struct EventLine: Decodable {
    struct Progress: Decodable {
        var stage: String
        var step: Int
        var total: Int
    }
    var kind: String?
    var job: String?
    var state: String?
    var progress: Progress?
    var message: String?
}

struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs", abstract: "List, show and cancel the jobs of a running server.",
        subcommands: [List.self, Show.self, Cancel.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List jobs, newest first.")
        @OptionGroup var serverOptions: ServerOptions
        @Option(help: "Only jobs in this state: queued, running, succeeded, failed, cancelled.") var state: String?
        @Option(help: "How many.") var limit = 50

        func run() async throws {
            try await reportingErrors {
                for job in try await serverOptions.client.jobs(state: state, limit: limit) {
                    var line = "\(job.id)  \(job.state.padding(toLength: 9, withPad: " ", startingAt: 0))"
                    if let progress = job.progress, let step = progress.step, let total = progress.total {
                        line += "  \(progress.stage ?? "") \(step)/\(total)"
                    }
                    if let message = job.error?.message { line += "  \(message)" }
                    print(line)
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one job as JSON.")
        @OptionGroup var serverOptions: ServerOptions
        @Argument var id: String

        func run() async throws {
            try await reportingErrors {
                let (_, json) = try await serverOptions.client.job(id)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try encoder.encode(json), as: UTF8.self))
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a queued or running job.")
        @OptionGroup var serverOptions: ServerOptions
        @Argument var id: String

        func run() async throws {
            try await reportingErrors {
                let job = try await serverOptions.client.cancel(id)
                print("\(job.id) \(job.state)")
            }
        }
    }
}

struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch", abstract: "Print the server's job events as they happen.")
    @OptionGroup var serverOptions: ServerOptions
    @Option(help: "Only this job's events.") var job: String?

    func run() async throws {
        try await reportingErrors {
            for try await message in serverOptions.client.events(job: job) {
                guard let data = message.data.data(using: .utf8),
                    let event = try? JSONDecoder().decode(EventLine.self, from: data)
                else { continue }
                var line = "\(message.event.padding(toLength: 9, withPad: " ", startingAt: 0)) \(event.job ?? "")"
                if let progress = event.progress { line += " \(progress.stage) \(progress.step)/\(progress.total)" }
                if let text = event.message { line += " \(text)" }
                printFlushed(line)
            }
        }
    }
}
