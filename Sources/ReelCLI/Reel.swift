import ArgumentParser

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

@main
struct Reel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reel",
        abstract: "Turn prompts into videos with Wan2.2 on your own GPUs.",
        version: "0.1.0",
        subcommands: [
            GenerateCommand.self, BatchCommand.self, ServeCommand.self, SubmitCommand.self, JobsCommand.self,
            WatchCommand.self, StylesCommand.self, LoRAsCommand.self, ModelsCommand.self, MigrateStoreCommand.self,
        ]
    )

    static func main() async {
        // A worker that dies mid-write must give us EPIPE, not kill us.
        signal(SIGPIPE, SIG_IGN)
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
