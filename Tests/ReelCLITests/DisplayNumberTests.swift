import Foundation
import ReelClient
import ReelWorkerProtocol
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
        #expect(ProgressDisplay.bar(step: 4, total: 8) == String(repeating: "#", count: 12) + String(repeating: ".", count: 12))
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

    @Test(arguments: ["1e300", "-1e300", "9.3e18"])
    func aSlotsStepThatNoIntegerHoldsDoesNotTrap(step: String) throws {
        let rows = try JSONDecoder().decode(
            BatchStatus.self,
            from: Data(#"{"id": "b", "total": 1, "counts": {}, "done": false, "jobs": [{"row": 2, "id": "j1"}]}"#.utf8)
        ).jobs
        let workers = try JSONDecoder().decode(
            JSONValue.self,
            from: Data(
                #"{"data": [{"slot": "cuda:0", "state": "busy", "job": "j1", "stage": "denoising", "step": \#(step), "total_steps": 8}]}"#
                    .utf8))
        let lines = BatchCommand.slotLines(workers, rows: rows)
        #expect(lines.count == 1 && lines[0].hasPrefix("  cuda:0: busy row 2"), "\(lines)")
        #expect(!lines[0].contains("\(step)/"), "a step that is not a whole number is not shown as one: \(lines)")
    }

    @Test func aSlotsWholeStepIsShown() throws {
        let rows = try JSONDecoder().decode(
            BatchStatus.self,
            from: Data(#"{"id": "b", "total": 1, "counts": {}, "done": false, "jobs": [{"row": 2, "id": "j1"}]}"#.utf8)
        ).jobs
        let workers = try JSONDecoder().decode(
            JSONValue.self,
            from: Data(
                #"{"data": [{"slot": "cuda:0", "state": "busy", "job": "j1", "stage": "denoising", "step": 3, "total_steps": 8}, {"slot": "cuda:1", "state": "ready"}]}"#
                    .utf8))
        #expect(BatchCommand.slotLines(workers, rows: rows) == ["  cuda:0: busy row 2 denoising 3/8", "  cuda:1: ready"])
    }
}
