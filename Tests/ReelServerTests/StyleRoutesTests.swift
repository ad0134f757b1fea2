import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ReelCore
import Testing

@testable import ReelServer

@Suite struct StyleRoutesTests {
    /// An application with only the style routes, behind the API's error middleware.
    func test<Value>(
        _ styles: StyleLibrary = .builtIn, _ body: @Sendable (any TestClientProtocol) async throws -> Value
    ) async throws -> Value {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: ErrorMiddleware<BasicRequestContext>())
        StyleRoutes(styles: styles).register(on: router)
        return try await Application(router: router).test(.router, body)
    }

    @Test func listsTheBuiltIns() async throws {
        try await test { client in
            let response = try await client.execute(uri: "/v1/styles", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
            let data = try #require(try response.object()["data"] as? [[String: Any]])
            #expect(data.map { $0["name"] as? String } == StyleLibrary.builtIn.styles.map(\.name))
            for (item, style) in zip(data, StyleLibrary.builtIn.styles) {
                #expect(Set(item.keys) == ["name", "prompt", "negative_prompt", "label_zh"])
                #expect(item["prompt"] as? String == style.prompt)
                #expect(item["negative_prompt"] as? String == style.negativePrompt)
                #expect(item["label_zh"] as? String == style.labelZH)
            }
            #expect(data.first?["label_zh"] as? String == "电影感")
        }
    }

    @Test func listsLoadedStylesWithANullLabel() async throws {
        var styles = StyleLibrary.builtIn
        styles.merge([
            Style(name: "cinematic", prompt: "mine {prompt}", negativePrompt: "n"),
            Style(name: "origami", prompt: "origami {prompt}", negativePrompt: ""),
        ])
        try await test(styles) { client in
            let data = try #require(
                try await client.execute(uri: "/v1/styles", method: .get).object()["data"] as? [[String: Any]])
            #expect(data.count == StyleLibrary.builtIn.styles.count + 1)
            #expect(data.first?["prompt"] as? String == "mine {prompt}")
            #expect(data.last?["name"] as? String == "origami")
            #expect(data.last?["label_zh"] is NSNull)
        }
    }

    @Test func showsOneStyle() async throws {
        try await test { client in
            let response = try await client.execute(uri: "/v1/styles/Ink-Wash", method: .get)
            #expect(response.status == .ok)
            let object = try response.object()
            #expect(object["name"] as? String == "ink-wash" && object["label_zh"] as? String == "水墨画")
        }
    }

    @Test func anUnknownStyleIsNotFoundWithTheClosestNames() async throws {
        try await test { client in
            let response = try await client.execute(uri: "/v1/styles/cinematc", method: .get)
            #expect(response.status == .notFound)
            let error = try response.apiError()
            #expect(error["code"] as? String == "not_found")
            #expect(error["field"] as? String == "style")
            #expect((error["message"] as? String)?.contains("the closest are cinematic") == true)
        }
    }
}
