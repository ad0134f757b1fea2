import ArgumentParser
import Foundation
import ReelAPI
import ReelClient
import ReelCore

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
    @Option(help: "Random seed, 0 to \(Int64.max).") var seed: UInt64?
    @Option(help: "Higher runs first.") var priority: Int?
    @Option(help: "A prompt style; see `reel styles`.") var style: String?
    @Option(help: "Multiply the frame rate by 2 or 4 with interpolation.") var interpolate: Int?
    @Flag(help: "Also keep every frame as PNG.") var pngFrames = false
    @OptionGroup var jobLoRAs: JobLoRAOptions
    @Option(help: "Makes retries of this submission safe: the same key returns the same job.") var idempotencyKey:
        String?
    @Flag(help: "Wait until the job ends, showing its progress.") var wait = false
    @Option(help: "With --wait: download the video to this file.") var out: String?

    func run() async throws {
        let (loras, recipeLoRAs) = try jobLoRAs.submission()
        let submission = JobSubmission(
            prompt: prompt, negativePrompt: negativePrompt, style: style, size: size, seconds: seconds, frames: frames,
            steps: steps, guidance: guidance, seed: seed, pngFrames: pngFrames ? true : nil, priority: priority,
            interpolate: interpolate, loras: loras, recipe: jobLoRAs.recipe, recipeLoRAs: recipeLoRAs)
        let client = serverOptions.client
        try await reportingErrors {
            let job = try await client.submit(submission, idempotencyKey: idempotencyKey)
            print(job.id)
            guard wait else { return }
            let final = try await follow(job.id, client: client)
            if final.state == .succeeded, let out {
                try await client.downloadVideo(job.id, to: absolutePath(out))
                printError("video: \(absolutePath(out))")
            }
            if final.state != .succeeded { throw ExitCode(1) }
        }
    }
}

/// Shows a job's progress from the event stream until it ends; returns the job as it ended.
func follow(_ id: String, client: ReelAPIClient) async throws -> JobResource {
    let display = ProgressDisplay(label: id)
    defer { display.finish() }
    let stream = client.events(job: id)
    // The job may have ended before the stream was open: look once first.
    var job = try await client.job(id)
    if job.state.isTerminal { return job }
    for try await message in stream {
        if let update = message.update, update.kind == .progress, let progress = update.progress {
            display.update(progress)
        }
        if JobUpdate.Kind(rawValue: message.event).isTerminal { break }
    }
    job = try await client.job(id)
    display.finish()
    printError("\(id): \(job.state.rawValue)" + (job.error.map { ": \($0.message)" } ?? ""))
    return job
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
            let wanted = try state.map { text in
                guard let state = JobState(rawValue: text) else {
                    let states = JobState.allCases.map(\.rawValue).joined(separator: ", ")
                    throw ValidationError("\(text) is not a job state; use one of \(states)")
                }
                return state
            }
            try await reportingErrors {
                for job in try await serverOptions.client.jobs(state: wanted, limit: limit).data {
                    var line = "\(job.id)  \(job.state.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0))"
                    if let progress = job.progress { line += "  \(progress.stage) \(progress.step)/\(progress.total)" }
                    if let error = job.error { line += "  \(error.message)" }
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
                let job = try await serverOptions.client.job(id)
                let encoder = WireJSON.makeEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try encoder.encode(job), as: UTF8.self))
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
                print("\(job.id) \(job.state.rawValue)")
            }
        }
    }
}

struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch", abstract: "Print the server's job events as they happen.")
    @OptionGroup var serverOptions: ServerOptions
    @Option(help: "Only this job's events; the command ends once the job has (succeeded, failed or cancelled).")
    var job: String?

    func run() async throws {
        try await reportingErrors {
            for try await message in serverOptions.client.events(job: job) {
                guard let update = message.update else { continue }
                var line = "\(message.event.padding(toLength: 9, withPad: " ", startingAt: 0)) \(update.job)"
                if let progress = update.progress { line += " \(progress.stage) \(progress.step)/\(progress.total)" }
                if let text = update.message { line += " \(text)" }
                printFlushed(line)
                if job != nil && update.kind.isTerminal { return }
            }
        }
    }
}
