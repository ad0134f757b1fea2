import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ReelServer
import Testing

@Suite struct SystemRoutesTests {
    @Test func healthzIsOK() async throws {
        let server = try TestServer()
        try await server.test { client in
            let response = try await client.execute(uri: "/healthz", method: .get)
            #expect(response.status == .ok)
            #expect(try response.object()["status"] as? String == "ok")
        }
    }

    @Test func readyzIs503WithoutAReadyWorker() async throws {
        let server = try TestServer()
        try await server.test { client in
            let response = try await client.execute(uri: "/readyz", method: .get)
            #expect(response.status == .serviceUnavailable)
            #expect(try response.object()["status"] as? String == "not_ready")
        }
    }

    @Test func workersListsTheSchedulersSlots() async throws {
        let server = try TestServer()
        try await server.test { client in
            let response = try await client.execute(uri: "/v1/workers", method: .get)
            #expect(response.status == .ok)
            #expect((try response.object()["data"] as? [Any])?.isEmpty == true)
        }
    }

    @Test func metricsCountJobsByState() async throws {
        let server = try TestServer()
        try await server.test { client in
            for index in 0..<3 { _ = try await client.submitJob(#"{"prompt": "fox \#(index)"}"#) }
            let cancelled = try await client.submitJob(#"{"prompt": "wolf"}"#)
            _ = try await client.execute(uri: "/v1/jobs/\(cancelled)", method: .delete)

            let response = try await client.execute(uri: "/metrics", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
            let lines = String(buffer: response.body).split(separator: "\n").map(String.init)
            #expect(lines.contains { $0.hasPrefix(#"reel_jobs{state="queued"} 3"#) }, "\(lines)")
            #expect(lines.contains { $0.hasPrefix(#"reel_jobs{state="cancelled"} 1"#) }, "\(lines)")
            #expect(lines.contains { $0.hasPrefix(#"reel_jobs{state="running"} 0"#) }, "\(lines)")
            #expect(lines.contains { $0.hasPrefix(#"reel_workers{state="ready"} 0"#) }, "\(lines)")
        }
    }
}
