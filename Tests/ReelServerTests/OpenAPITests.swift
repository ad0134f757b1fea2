import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ReelTestSupport
import Testing

@testable import ReelServer

/// The published contract stays true: every route the router has is in docs/openapi.json with its method, every
/// operation the document lists is routed, and GET /openapi.json serves the document as committed.
@Suite struct OpenAPITests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func document() throws -> [String: Any] {
        let data = try Data(contentsOf: root.appendingPathComponent("docs/openapi.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static let methods: Set<String> = ["get", "put", "post", "delete", "patch", "head", "options", "trace"]

    /// "GET /v1/jobs/{id}" for every operation of the document.
    static func documented() throws -> Set<String> {
        let paths = try #require(try document()["paths"] as? [String: [String: Any]])
        var operations: Set<String> = []
        for (path, item) in paths {
            for method in item.keys where methods.contains(method) {
                operations.insert("\(method.uppercased()) \(path)")
            }
        }
        return operations
    }

    static let comfyUIPaths: Set<String> = [
        "/prompt", "/queue", "/history", "/history/{id}", "/view", "/interrupt", "/free", "/upload/image",
        "/system_stats", "/object_info", "/object_info/{class}", "/embeddings", "/extensions", "/models",
        "/models/{folder}", "/features", "/ws",
    ]

    static func isComfyUIRoute(_ path: String) -> Bool {
        comfyUIPaths.contains(path.hasPrefix("/api/") ? String(path.dropFirst(4)) : path)
    }

    @Test func everyRouteIsDocumentedAndEveryOperationRouted() throws {
        let server = try TestServer()
        let router = ReelServerApplication.makeRouter(service: server.service, metrics: server.metrics)
        // Hummingbird describes `:id` as `{id}`, OpenAPI's own form.
        // ComfyUI's API is ComfyUI's contract, documented in docs/comfyui.md and tested with its clients.
        let routed = Set(router.routes.map { "\($0.method) \($0.path)" }).filter {
            !Self.isComfyUIRoute(String($0.split(separator: " ")[1]))
        }
        let documented = try Self.documented()
        #expect(routed.subtracting(documented).sorted() == [], "routed but not in docs/openapi.json")
        #expect(documented.subtracting(routed).sorted() == [], "in docs/openapi.json but not routed")
        #expect(routed.count > 20)
    }

    @Test func theDocumentIsOpenAPI31WithAnAnswerForEveryOperation() throws {
        let document = try Self.document()
        #expect(document["openapi"] as? String == "3.1.0")
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        for (path, item) in paths {
            for (method, operation) in item where Self.methods.contains(method) {
                let responses = (operation as? [String: Any])?["responses"] as? [String: Any] ?? [:]
                #expect(responses.keys.contains { $0.hasPrefix("2") }, "\(method) \(path) has no 2xx answer")
                #expect(
                    responses["default"] != nil || path == "/openapi.json", "\(method) \(path) has no default answer")
            }
        }
    }

    @Test func getOpenAPIJSONServesTheCommittedDocumentWithoutAKey() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let server = try KeyedServer(dataDirectory: directory)
            try await server.test { client in
                let response = try await client.execute(uri: "/openapi.json", method: .get)
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
                let committed = try String(
                    contentsOf: Self.root.appendingPathComponent("docs/openapi.json"), encoding: .utf8)
                #expect(
                    String(buffer: response.body) == committed.trimmingCharacters(in: .newlines),
                    "docs/openapi.json changed: run python3 scripts/embed-web.py")
            }
        }
    }
}
