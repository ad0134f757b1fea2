import ReelCore
import Testing

@Suite struct ApproximateSpeedUpTests {
    @Test func knownSpeedUpsWithOrWithoutAThresholdPass() throws {
        #expect(try ApproximateSpeedUp.validate("first-block-cache") == "first-block-cache")
        #expect(try ApproximateSpeedUp.validate("first-block-cache:0.08") == "first-block-cache:0.08")
    }

    @Test(arguments: [
        ("teacache", "unknown; the approximate speed-ups are first-block-cache"),
        ("first-block-cache:fast", "'fast' is not a number"),
        ("first-block-cache:1.5", "between 0 and 1"),
    ])
    func badSpecsAreRefusedByName(spec: String, message: String) {
        do {
            _ = try ApproximateSpeedUp.validate(spec)
            Issue.record("\(spec) was accepted")
        } catch {
            #expect(error.description.contains(message), "\(error.description)")
        }
    }
}
