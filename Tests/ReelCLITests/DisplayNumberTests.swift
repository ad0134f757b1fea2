import Foundation
import ReelAPI
import Testing

@testable import ReelCLI

/// The CLI's progress displays draw whatever numbers a server sends: a step past its total, a total of zero or
/// below, a step no integer holds. None of them may trap.
@Suite struct DisplayNumberTests {
    @Test(arguments: [(5, 4), (0, 0), (3, 0), (3, -4), (-3, 4), (Int.max, 1), (Int.min, 1), (1, Int.max)])
    func aJobsBarIsAlwaysItsWidth(step: Int, total: Int) {
        let bar = ProgressDisplay.bar(step: step, total: total)
        #expect(bar.count == 24, "\(step)/\(total): \(bar)")
    }

    @Test func aJobsBarFillsByTheShareDoneAndStaysFullPastItsTotal() {
        #expect(ProgressDisplay.bar(step: 0, total: 8) == String(repeating: ".", count: 24))
        #expect(
            ProgressDisplay.bar(step: 4, total: 8) == String(repeating: "#", count: 12)
                + String(repeating: ".", count: 12))
        #expect(ProgressDisplay.bar(step: 9, total: 8) == String(repeating: "#", count: 24))
        #expect(ProgressDisplay.bar(step: 3, total: 0) == String(repeating: ".", count: 24))
    }

    @Test(arguments: [(5, 4), (0, 0), (3, -4), (-3, 4), (Int.max, 2), (Int.max, Int.max), (1, Int.max)])
    func aBatchsBarIsAlwaysItsWidth(done: Int, total: Int) {
        let bar = BatchDisplay.bar(done, total)
        #expect(bar.count == 30, "\(done)/\(total): \(bar)")
    }

    @Test func aBatchsBarIsFullOnceEveryJobIsDone() {
        #expect(BatchDisplay.bar(3, 3) == String(repeating: "#", count: 30))
        #expect(BatchDisplay.bar(1, 3) == String(repeating: "#", count: 10) + String(repeating: ".", count: 20))
        #expect(BatchDisplay.bar(4, 3) == String(repeating: "#", count: 30))
        #expect(BatchDisplay.bar(0, 0) == String(repeating: "#", count: 30), "nothing to do is done")
    }

    @Test func aSlotsWholeStepIsShownOnTheRowItRuns() {
        let rows = [BatchResource.Row(row: 2, id: "j1", state: .running, progress: nil, videoURL: nil, error: nil)]
        let workers = [
            WorkerResource(slot: "cuda:0", state: .busy, job: "j1", step: 3, totalSteps: 8, stage: "denoising"),
            WorkerResource(
                slot: "cuda:1", state: .busy, job: "another-batch", step: 1, totalSteps: 8, stage: "denoising"),
            WorkerResource(slot: "cuda:2", state: .ready),
        ]
        #expect(
            BatchCommand.slotLines(workers, rows: rows)
                == ["  cuda:0: busy row 2 denoising 3/8", "  cuda:1: busy", "  cuda:2: ready"])
    }

    /// A step no `Int` holds no longer reaches the CLI as a number: the wire type refuses the listing (see
    /// `WireJSONTests`), and the batch view then shows no slot lines.
    @Test(arguments: ["1e300", "-1e300", "9.3e18"])
    func aSlotsStepThatNoIntegerHoldsDoesNotTrap(step: String) {
        let body = #"{"data": [{"slot": "cuda:0", "state": "busy", "job": "j1", "step": \#(step), "total_steps": 8}]}"#
        #expect(throws: DecodingError.self) {
            try WireJSON.makeDecoder().decode(DataList<WorkerResource>.self, from: Data(body.utf8))
        }
    }
}
