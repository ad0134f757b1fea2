import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ReelServer
import ReelStore
import ReelTestSupport
import Testing

/// Values no GPU should ever be asked for are refused with a 400 that names the field, and queue nothing.
@Suite struct AbsurdParameterTests {
    /// A JSON field's value and the field the error must name.
    static let cases: [(json: String, field: String)] = [
        (#""frames": 1000000000"#, "frames"),
        (#""frames": 1e300"#, "frames"),
        (#""frames": -5"#, "frames"),
        (#""size": "100000x100000""#, "size"),
        (#""size": "99999999999999x99999999999999""#, "size"),
        (#""size": "9223372036854775807x9223372036854775807""#, "size"),
        (#""size": "0x0""#, "size"),
        (#""size": "-64x64""#, "size"),
        (#""size": 64"#, "size"),
        (#""steps": "NaN""#, "steps"),
        (#""steps": 1e18"#, "steps"),
        (#""steps": 2.5"#, "steps"),
        (#""steps": true"#, "steps"),
        (#""seconds": 1e300"#, "seconds"),
        (#""seconds": 1000000000"#, "seconds"),
        (#""seconds": -1"#, "seconds"),
        (#""seconds": [4]"#, "seconds"),
        (#""guidance": 1e308"#, "guidance"),
        (#""guidance": "high""#, "guidance"),
        (#""fps": 1000000000"#, "fps"),
        (#""seed": -1"#, "seed"),
        (#""seed": 1e30"#, "seed"),
        (#""priority": 1000000000"#, "priority"),
        (#""interpolate": 3"#, "interpolate"),
        (#""png_frames": "yes""#, "png_frames"),
        (#""prompt": 5"#, "prompt"),
        (#""prompt": {"text": "x"}"#, "prompt"),
        (#""style": "no-such-style""#, "style"),
        (#""shell": "rm -rf /""#, "shell"),
    ]

    @Test func jobsAndVideosRefuseThemWith400AndQueueNothing() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory)
            try await server.test { client in
                for (field, name) in Self.cases {
                    let prompt = name == "prompt" ? "" : #""prompt": "a fox", "#
                    let json = "{\(prompt)\(field)}"
                    for uri in ["/v1/jobs", "/v1/videos"] {
                        let response = try await client.call(.post, uri, key: KeyedServer.keyA, json: json)
                        #expect(response.status == .badRequest, "\(uri) \(json): \(String(buffer: response.body))")
                        let error = try response.apiError()
                        #expect(
                            (error[uri == "/v1/videos" ? "param" : "field"] as? String) == name,
                            "\(uri) \(json): \(String(buffer: response.body))")
                    }
                }
                // Not JSON at all: NaN and Infinity are not JSON numbers.
                for body in [
                    #"{"prompt": "a fox", "steps": NaN}"#, #"{"prompt": "a fox", "frames": Infinity}"#, "[1]", "\"x\"",
                ] {
                    for uri in ["/v1/jobs", "/v1/videos"] {
                        let response = try await client.call(.post, uri, key: KeyedServer.keyA, json: body)
                        #expect(response.status == .badRequest, "\(uri) \(body)")
                        #expect(try response.apiError()["code"] as? String == "invalid_json", "\(uri) \(body)")
                    }
                }
                #expect(try await server.jobCount() == 0)
            }
        }
    }

    @Test func formFieldsAreReadAsTheirTypesAndRefusedAlike() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory)
            try await server.test { client in
                let cases: [([(String, String)], String)] = [
                    ([("frames", "1000000000")], "frames"), ([("size", "100000x100000")], "size"),
                    ([("steps", "NaN")], "steps"), ([("steps", "nan")], "steps"), ([("guidance", "inf")], "guidance"),
                    ([("seconds", "1e300")], "seconds"), ([("seconds", "four")], "seconds"), ([("seed", "-1")], "seed"),
                    ([("png_frames", "maybe")], "png_frames"), ([("prompt", "x"), ("prompt", "y")], "prompt"),
                    ([("model", "gpt-4o")], "model"), ([("unknown_field", "1")], "unknown_field"),
                ]
                for (fields, name) in cases {
                    let all = fields.contains { $0.0 == "prompt" } ? fields : [("prompt", "a fox")] + fields
                    let form = MultipartBody(fields: all)
                    let response = try await client.execute(
                        uri: "/v1/videos", method: .post,
                        headers: bearer(KeyedServer.keyA, [.contentType: form.contentType]),
                        body: form.buffer)
                    #expect(response.status == .badRequest, "\(fields): \(String(buffer: response.body))")
                    #expect(
                        try response.apiError()["param"] as? String == name,
                        "\(fields): \(String(buffer: response.body))")
                }
                // An input_reference file that is no image is refused.
                let upload = MultipartBody(
                    fields: [("prompt", "a fox")],
                    files: [(name: "input_reference", filename: "ref.png", data: Data([0x89, 0x50]))])
                let response = try await client.execute(
                    uri: "/v1/videos", method: .post,
                    headers: bearer(KeyedServer.keyA, [.contentType: upload.contentType]),
                    body: upload.buffer)
                #expect(response.status == .badRequest)
                #expect(try response.apiError()["param"] as? String == "input_reference")
                // A malformed multipart body.
                let broken = try await client.execute(
                    uri: "/v1/videos", method: .post,
                    headers: bearer(KeyedServer.keyA, [.contentType: "multipart/form-data; boundary=abc"]),
                    body: ByteBuffer(string: "--abc\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nno end"))
                #expect(broken.status == .badRequest)
                #expect(try await server.jobCount() == 0)
            }
        }
    }

    @Test func batchRowsWithAbsurdValuesAreRejectedByRow() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory)
            try await server.test { client in
                let csv = "prompt,seconds,size\r\nfox,1e300,64x64\r\nfox,1,99999999999x99999999999\r\n"
                let response = try await client.execute(
                    uri: "/v1/batches", method: .post, headers: bearer(KeyedServer.keyA, [.contentType: "text/csv"]),
                    body: ByteBuffer(string: csv))
                let body = try response.object()
                let rejected = try #require(body["rejected"] as? [[String: Any]])
                #expect(rejected.map { $0["column"] as? String } == ["seconds", "size"])
                #expect(try await server.jobCount() == 0)
            }
        }
    }
}
