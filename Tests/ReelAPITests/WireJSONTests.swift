import Foundation
import ReelAPI
import ReelCore
import Testing

/// The wire types read what the server writes and write it back unchanged: dates to the millisecond, seeds to the
/// last digit, a withheld job as `null`, and numbers no integer holds as a decoding error rather than a trap.
@Suite struct WireJSONTests {
    @Test func aDateReadsBackAsTheSameMillisecond() throws {
        let encoder = WireJSON.makeEncoder()
        let decoder = WireJSON.makeDecoder()
        // The format style truncates, and half of all dates read back would otherwise lose a millisecond.
        for index in 0..<2_000 {
            let text = WireJSON.dateStyle.format(Date(timeIntervalSince1970: 1_750_000_000 + Double(index) * 0.001))
            let date = try decoder.decode(Date.self, from: Data(#""\#(text)""#.utf8))
            #expect(String(decoding: try encoder.encode(date), as: UTF8.self) == #""\#(text)""#)
        }
    }

    @Test func aDateThatIsNotISO8601IsADecodingError() {
        #expect(throws: DecodingError.self) {
            try WireJSON.makeDecoder().decode(Date.self, from: Data(#""yesterday""#.utf8))
        }
    }

    @Test(arguments: [0, 1, 9_007_199_254_740_993, UInt64(Int64.max)])
    func aSubmissionSendsItsSeedAsAnExactInteger(seed: UInt64) throws {
        let body = try JSONEncoder().encode(JobSubmission(prompt: "a fox", seed: seed))
        let text = String(decoding: body, as: UTF8.self)
        #expect(text.contains(#""seed":\#(seed)"#), "\(text)")
        #expect(try JSONDecoder().decode(JobSubmission.self, from: body).seed == seed)
    }

    @Test func aSubmissionLeavesOutWhatItDoesNotSet() throws {
        let body = try JSONEncoder().encode(JobSubmission(prompt: "a fox", pngFrames: true))
        let object = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
        #expect(Set(object.keys) == ["prompt", "png_frames"])
    }

    @Test func aSlotsJobIsAnIdNullOrAbsentAndStaysSo() throws {
        let json =
            #"[{"slot": "a", "state": "busy", "job": "job_1"}, {"slot": "b", "state": "busy", "job": null}, {"slot": "c", "state": "ready"}]"#
        let slots = try WireJSON.makeDecoder().decode([WorkerResource].self, from: Data(json.utf8))
        #expect(slots.map(\.job) == ["job_1", nil, nil])
        #expect(slots.map(\.jobWithheld) == [false, true, false])
        let back = try JSONSerialization.jsonObject(with: WireJSON.makeEncoder().encode(slots)) as? [[String: Any]]
        #expect(back?[0]["job"] as? String == "job_1")
        #expect(back?[1]["job"] is NSNull)
        #expect(back?[2].keys.contains("job") == false)
    }

    @Test func aClusterSlotAlwaysSaysWhereItsNodeIsEvenWhenUnknown() throws {
        let slot = WorkerResource(slot: "cpu", node: "a", state: .ready, nodeURL: nil, stale: false)
        let object = try JSONSerialization.jsonObject(with: WireJSON.makeEncoder().encode(slot)) as? [String: Any]
        #expect(object?["node_url"] is NSNull && object?["stale"] as? Bool == false)
        let alone = WorkerResource(slot: "cpu", node: "a", state: .ready)
        let plain = try JSONSerialization.jsonObject(with: WireJSON.makeEncoder().encode(alone)) as? [String: Any]
        #expect(plain.map { Set($0.keys) } == ["slot", "node", "state"])
    }

    @Test func aSlotStateANewerNodeAddsStillDecodes() throws {
        let slot = try WireJSON.makeDecoder().decode(
            WorkerResource.self, from: Data(#"{"slot": "cpu", "state": "draining"}"#.utf8))
        #expect(slot.state.rawValue == "draining" && slot.state != .ready)
    }

    @Test(arguments: ["1e300", "-1e300", "9.3e18", "2.5"])
    func aSlotsStepThatNoIntegerHoldsIsADecodingErrorNotATrap(step: String) {
        let json = #"{"data": [{"slot": "cuda:0", "state": "busy", "job": "j1", "step": \#(step), "total_steps": 8}]}"#
        #expect(throws: DecodingError.self) {
            try WireJSON.makeDecoder().decode(DataList<WorkerResource>.self, from: Data(json.utf8))
        }
    }

    @Test func aJobsKeysAreAllPresentWithNullsWhereUnset() throws {
        let job = JobResource(
            id: "job_1", state: .queued, progress: nil,
            spec: .init(
                prompt: "a fox", negativePrompt: "", size: "64x64", width: 64, height: 64, frames: 5, fps: 24,
                seconds: 0.2, steps: 2, guidance: 5, guidance2: nil, seed: UInt64(Int64.max), model: "tiny",
                pngFrames: false, style: nil, userPrompt: nil, interpolate: 1, outputFrames: 5, outputFPS: 24,
                requestedSeconds: nil),
            priority: 0, attempts: 0, cancelRequested: false, createdAt: Date(timeIntervalSince1970: 1_750_000_000),
            startedAt: nil, finishedAt: nil, error: nil, outputs: nil, batchID: nil, node: nil)
        let data = try WireJSON.makeEncoder().encode(job)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object.count == 15 && object["progress"] is NSNull && object["node"] is NSNull)
        #expect(String(decoding: data, as: UTF8.self).contains(#""seed":9223372036854775807"#))
        #expect(try WireJSON.makeDecoder().decode(JobResource.self, from: data).spec.seed == UInt64(Int64.max))
    }
}
