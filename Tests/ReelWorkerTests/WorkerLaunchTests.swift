import ReelWorker
import Testing

/// The worker's command line for each placement, as the engine's argparse reads it.
@Suite struct WorkerLaunchTests {
    let engine = EngineLocation(python: "python3", packageDirectory: nil)

    @Test func aReplicaGetsOnlyItsDevice() {
        let launch = WorkerLaunch(engine: engine, device: "cuda:1", model: "tiny", dataDirectory: "/d")
        #expect(
            launch.arguments == [
                "-m", "reel_engine.worker", "--device", "cuda:1", "--model", "tiny", "--data-dir", "/d",
            ])
    }

    @Test func splitBudgetAndGroupFlags() {
        let split = WorkerLaunch(
            engine: engine, device: "cuda:1", model: "tiny", dataDirectory: "/d", textDevice: "cuda:0",
            memoryBudgetGiB: 24)
        #expect(split.arguments.suffix(4) == ["--text-device", "cuda:0", "--memory-budget", "24"])
        let half = WorkerLaunch(engine: engine, device: "cpu", model: "tiny", dataDirectory: "/d", memoryBudgetGiB: 7.5)
        #expect(half.arguments.suffix(2) == ["--memory-budget", "7.5"])
        let rank = WorkerLaunch(
            engine: engine, device: "cuda:3", model: "tiny", dataDirectory: "/d",
            group: .init(rank: 1, worldSize: 2, initMethod: "file:///run/g.rendezvous"))
        #expect(
            rank.arguments.suffix(6) == ["--rank", "1", "--world-size", "2", "--dist-init", "file:///run/g.rendezvous"])
        var approximate = WorkerLaunch(engine: engine, device: "cpu", model: "tiny", dataDirectory: "/d")
        approximate.approximate = "first-block-cache:0.1"
        #expect(approximate.arguments.suffix(2) == ["--approximate", "first-block-cache:0.1"])
    }
}
