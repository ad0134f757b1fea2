import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ReelServer
import Testing

@Suite struct SubmissionValidationTests {
    /// A bad body, the field its error must name, and a phrase its message must contain.
    struct Case: Sendable, CustomTestStringConvertible {
        var body: String
        var field: String
        var says: String = ""
        var testDescription: String { body }
    }

    static let cases: [Case] = [
        Case(body: #"{"prompt": "fox", "size": "250x250"}"#, field: "size", says: "nearest valid size is 256x256"),
        Case(body: #"{"prompt": "fox", "size": "100000x100000"}"#, field: "size", says: "pixels"),
        Case(body: #"{"prompt": "fox", "size": "big"}"#, field: "size"),
        Case(body: #"{"prompt": "fox", "frames": 1e9}"#, field: "frames"),
        Case(body: #"{"prompt": "fox", "frames": 1000000001}"#, field: "frames", says: "limit"),
        Case(body: #"{"prompt": "fox", "frames": 1e300}"#, field: "frames"),
        Case(body: #"{"prompt": "fox", "frames": 16}"#, field: "frames", says: "4n+1"),
        Case(body: #"{"prompt": "fox", "frames": 9, "seconds": 1}"#, field: "frames"),
        Case(body: #"{"prompt": "fox", "steps": "abc"}"#, field: "steps", says: "whole number"),
        Case(body: #"{"prompt": "fox", "steps": 2.5}"#, field: "steps"),
        Case(body: #"{"prompt": "fox", "steps": 100000}"#, field: "steps"),
        Case(body: #"{"prompt": "fox", "guidance": "NaN"}"#, field: "guidance", says: "number"),
        Case(body: #"{"prompt": "fox", "guidance": 1000}"#, field: "guidance"),
        Case(body: #"{"prompt": "fox", "seconds": -1}"#, field: "seconds"),
        Case(body: #"{"prompt": "fox", "seed": -1}"#, field: "seed"),
        Case(body: #"{"prompt": "fox", "png_frames": "yes"}"#, field: "png_frames"),
        Case(body: #"{"prompt": "fox", "priority": 101}"#, field: "priority"),
        Case(body: #"{"prompt": "fox", "priority": "high"}"#, field: "priority"),
        Case(body: #"{"prompt": "fox", "model": "tiny:t2v-a14b"}"#, field: "model", says: "tiny"),
        Case(body: #"{"prompt": "fox", "style": "no-such-style"}"#, field: "style", says: "unknown style"),
        Case(body: #"{"prompt": "fox", "colour": "red"}"#, field: "colour", says: "unknown field"),
        Case(body: #"{"negative_prompt": "blur"}"#, field: "prompt"),
        Case(body: #"{"prompt": "   "}"#, field: "prompt"),
        Case(body: #"{"prompt": 42}"#, field: "prompt", says: "string"),
    ]

    @Test(arguments: cases)
    func badFieldIs400NamingItAndQueuesNothing(_ bad: Case) async throws {
        let server = try TestServer()
        try await server.test { client in
            let response = try await client.submit(bad.body)
            #expect(response.status == .badRequest, "\(String(buffer: response.body))")
            let error = try response.apiError()
            #expect(error["code"] as? String == "invalid_value")
            #expect(error["field"] as? String == bad.field)
            let message = try #require(error["message"] as? String)
            #expect(bad.says.isEmpty || message.contains(bad.says), "\(message)")
            #expect(try await server.jobCount() == 0)
        }
    }

    @Test(arguments: ["{", "[1, 2]", "\"fox\"", ""])
    func aBodyThatIsNotAJSONObjectIs400(_ body: String) async throws {
        let server = try TestServer()
        try await server.test { client in
            let response = try await client.submit(body)
            #expect(response.status == .badRequest)
            let error = try response.apiError()
            #expect(error["code"] as? String == "invalid_json")
            #expect(error["field"] is NSNull)
            #expect(try await server.jobCount() == 0)
        }
    }

    @Test func explicitNullsAndTheServersModelAreAccepted() async throws {
        let server = try TestServer()
        try await server.test { client in
            let response = try await client.submit(
                #"{"prompt": "fox", "model": "tiny", "style": "", "seed": null, "png_frames": true, "seconds": 0.5}"#)
            #expect(response.status == .created)
            let spec = try #require(try response.object()["spec"] as? [String: Any])
            #expect(spec["png_frames"] as? Bool == true)
            #expect(spec["frames"] as? Int == 13)
        }
    }
}
