import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ReelServer
import Testing

@Suite struct EventStreamTests {
    @Test func streamSendsQueuedAndCancelledEventsOfASubmittedJob() async throws {
        let server = try TestServer()
        try await server.test(.live) { client in
            let port = try #require(client.port)
            let stream = try RawHTTPStream(port: port, path: "/v1/events")
            defer { stream.close() }
            let head = try await stream.waitFor(": connected")
            #expect(head.hasPrefix("HTTP/1.1 200"))
            #expect(head.lowercased().contains("content-type: text/event-stream"))

            let id = try await client.submitJob()
            let queued = try await stream.waitFor("event: queued\ndata: {")
            let data = try #require(
                queued.components(separatedBy: "\n").first { $0.hasPrefix("data: ") && $0.contains(id) })
            let event = try #require(
                try JSONSerialization.jsonObject(with: Data(data.dropFirst(6).utf8)) as? [String: Any])
            #expect(event["kind"] as? String == "queued")
            #expect(event["job"] as? String == id)
            #expect(event["state"] as? String == "queued")

            #expect(try await client.execute(uri: "/v1/jobs/\(id)", method: .delete).status == .ok)
            _ = try await stream.waitFor("event: cancelled\n")
        }
    }

    @Test func jobFilterKeepsOtherJobsOut() async throws {
        let server = try TestServer()
        try await server.test(.live) { client in
            let watched = try await client.submitJob(#"{"prompt": "watched"}"#)
            let stream = try RawHTTPStream(port: try #require(client.port), path: "/v1/events?job=\(watched)")
            defer { stream.close() }
            _ = try await stream.waitFor(": connected")
            let other = try await client.submitJob(#"{"prompt": "other"}"#)
            _ = try await client.execute(uri: "/v1/jobs/\(watched)", method: .delete)
            let text = try await stream.waitFor("event: cancelled\n")
            #expect(text.contains(watched))
            #expect(!text.contains(other))
            #expect(!text.contains("event: queued"))
        }
    }

    @Test func idleStreamSendsHeartbeats() async throws {
        let server = try TestServer(
            configuration: ReelServerConfiguration(port: 0, heartbeatInterval: .milliseconds(50)))
        try await server.test(.live) { client in
            let stream = try RawHTTPStream(port: try #require(client.port), path: "/v1/events")
            defer { stream.close() }
            _ = try await stream.waitFor(": ping\n\n")
        }
    }

    @Test func disconnectedClientsAreUnsubscribed() async throws {
        let server = try TestServer(
            configuration: ReelServerConfiguration(port: 0, heartbeatInterval: .milliseconds(50)))
        try await server.test(.live) { client in
            let stream = try RawHTTPStream(port: try #require(client.port), path: "/v1/events")
            _ = try await stream.waitFor(": connected")
            #expect(server.scheduler.store.updateSubscriberCount == 1)
            stream.close()
            // The next heartbeat's write fails and ends the stream.
            let deadline = ContinuousClock.now + .seconds(10)
            while server.scheduler.store.updateSubscriberCount > 0 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(server.scheduler.store.updateSubscriberCount == 0)
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func anOpenStreamEndsOnGracefulShutdown() async throws {
        let server = try TestServer()
        let stream = try await server.test(.live) { client in
            let stream = try RawHTTPStream(port: try #require(client.port), path: "/v1/events")
            _ = try await stream.waitFor(": connected")
            return stream
        }
        defer { stream.close() }
        // The server has shut down with the client still connected: the stream ended with the last chunk.
        _ = try await stream.waitFor("0\r\n\r\n")
    }

    @Test func unknownJobFilterIs404() async throws {
        let server = try TestServer()
        try await server.test { client in
            let response = try await client.execute(uri: "/v1/events?job=job_nope", method: .get)
            #expect(response.status == .notFound)
            #expect(try response.apiError()["code"] as? String == "not_found")
        }
    }
}
