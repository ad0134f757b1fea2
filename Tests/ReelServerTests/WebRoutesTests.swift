import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import ReelServer

@Suite struct WebRoutesTests {
    func test<Value>(_ body: @Sendable (any TestClientProtocol) async throws -> Value) async throws -> Value {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: ErrorMiddleware<BasicRequestContext>())
        WebRoutes().register(on: router)
        return try await Application(router: router).test(.router, body)
    }

    /// The checkout's web/ folder, found from this file's path.
    static let webDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("web")

    @Test func servesThePageWithAStrictPolicy() async throws {
        try await test { client in
            let response = try await client.execute(uri: "/", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "text/html; charset=utf-8")
            #expect(response.headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff")
            let policy = try #require(response.headers[.contentSecurityPolicy])
            #expect(
                policy.hasPrefix(
                    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; "
                        + "script-src 'self'; connect-src 'self'"))
            let html = String(buffer: response.body)
            #expect(html.contains("<script type=\"module\" src=\"/web/app.js\">"))
            // Nothing outside the server: no absolute URLs to load.
            #expect(!html.contains("http://") && !html.contains("https://"))
        }
    }

    @Test func servesEachFileWithItsType() async throws {
        try await test { client in
            for (name, type) in [
                ("app.js", "text/javascript; charset=utf-8"), ("styles.css", "text/css; charset=utf-8"),
                ("index.html", "text/html; charset=utf-8"),
            ] {
                let response = try await client.execute(uri: "/web/\(name)", method: .get)
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == type)
                #expect(response.headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff")
                #expect(String(buffer: response.body) == WebAssets.files[name]?.body)
            }
        }
    }

    @Test func refusesUnknownFiles() async throws {
        try await test { client in
            for uri in ["/web/nope.js", "/web/..%2FPackage.swift", "/web/", "/web/a/b.js"] {
                let response = try await client.execute(uri: uri, method: .get)
                #expect(response.status == .notFound, "\(uri)")
            }
        }
    }

    /// The embedded files are exactly the checkout's web/ folder: run `python3 scripts/embed-web.py` after editing.
    @Test func embeddedFilesMatchTheWebFolder() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.webDirectory.path)
            .filter { !$0.hasPrefix(".") }.sorted()
        #expect(names == WebAssets.files.keys.sorted(), "run python3 scripts/embed-web.py")
        for name in names {
            let text = try String(contentsOf: Self.webDirectory.appendingPathComponent(name), encoding: .utf8)
            #expect(text == WebAssets.files[name]?.body, "web/\(name) changed; run python3 scripts/embed-web.py")
        }
    }
}
