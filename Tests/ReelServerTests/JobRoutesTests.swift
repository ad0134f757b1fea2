import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ReelServer
import ReelStore
import Testing

@Suite struct JobRoutesTests {
    @Test func createAnswers201WithTheQueuedJob() async throws {
        let server = try TestServer()
        try await server.test { client in
            let response = try await client.submit(
                #"{"prompt": "a red fox", "size": "320x256", "frames": 9, "seed": 7, "priority": 5}"#)
            #expect(response.status == .created)
            #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
            let job = try response.object()
            let id = try #require(job["id"] as? String)
            #expect(response.headers[.location] == "/v1/jobs/\(id)")
            #expect(job["object"] as? String == "job")
            #expect(job["state"] as? String == "queued")
            #expect(job["priority"] as? Int == 5)
            #expect(job["attempts"] as? Int == 0)
            #expect(job["progress"] is NSNull)
            #expect(job["error"] is NSNull)
            #expect(job["outputs"] is NSNull)
            #expect(job["batch_id"] is NSNull)
            #expect(job["started_at"] is NSNull)
            #expect((job["created_at"] as? String)?.hasSuffix("Z") == true)
            let spec = try #require(job["spec"] as? [String: Any])
            #expect(spec["prompt"] as? String == "a red fox")
            #expect(spec["size"] as? String == "320x256")
            #expect(spec["width"] as? Int == 320)
            #expect(spec["height"] as? Int == 256)
            #expect(spec["frames"] as? Int == 9)
            #expect(spec["fps"] as? Int == 24)
            #expect(spec["seed"] as? Int == 7)
            #expect(spec["model"] as? String == "tiny")
            #expect(spec["png_frames"] as? Bool == false)

            let stored = try #require(try await server.store.job(id: id))
            #expect(stored.state == .queued)
            #expect(stored.priority == 5)

            let fetched = try await client.execute(uri: "/v1/jobs/\(id)", method: .get)
            #expect(fetched.status == .ok)
            #expect(try fetched.object()["id"] as? String == id)
        }
    }

    @Test func replayWithTheSameKeyAndBodyAnswers200WithTheSameJob() async throws {
        let server = try TestServer()
        try await server.test { client in
            let first = try await client.submit(#"{"prompt": "a fox", "steps": 4}"#, key: "key-1")
            #expect(first.status == .created)
            // The same request, keys reordered and re-spaced: the same canonical body.
            let second = try await client.submit(#"{ "steps": 4.0, "prompt": "a fox" }"#, key: "key-1")
            #expect(second.status == .ok)
            #expect(try second.object()["id"] as? String == first.object()["id"] as? String)
            #expect(try await server.jobCount() == 1)
        }
    }

    @Test func sameKeyWithAnotherBodyIsAConflict() async throws {
        let server = try TestServer()
        try await server.test { client in
            #expect(try await client.submit(#"{"prompt": "a fox"}"#, key: "key-2").status == .created)
            let response = try await client.submit(#"{"prompt": "a wolf"}"#, key: "key-2")
            #expect(response.status == .conflict)
            let error = try response.apiError()
            #expect(error["code"] as? String == "conflict")
            #expect((error["message"] as? String)?.contains("key-2") == true)
            #expect(try await server.jobCount() == 1)
        }
    }

    @Test func oversizedBodyIs413() async throws {
        let server = try TestServer()
        try await server.test { client in
            let prompt = String(repeating: "a", count: (1 << 20) + 100)
            let response = try await client.submit(#"{"prompt": "\#(prompt)"}"#)
            #expect(response.status == .contentTooLarge)
            #expect(try response.apiError()["code"] as? String == "payload_too_large")
            #expect(try await server.jobCount() == 0)
        }
    }

    @Test func aLiveServerAcceptsJobsAndRefusesOversizedBodies() async throws {
        let server = try TestServer()
        try await server.test(.live) { client in
            let id = try await client.submitJob()
            #expect(try await client.execute(uri: "/v1/jobs/\(id)", method: .get).status == .ok)
            let prompt = String(repeating: "a", count: 2 << 20)
            let response = try await client.submit(#"{"prompt": "\#(prompt)"}"#)
            #expect(response.status == .contentTooLarge)
            #expect(try response.apiError()["code"] as? String == "payload_too_large")
            #expect(try await server.jobCount() == 1)
        }
    }

    @Test func aSmallerConfiguredBodyLimitApplies() async throws {
        let server = try TestServer(configuration: ReelServerConfiguration(port: 0, maxBodyBytes: 64))
        try await server.test { client in
            let response = try await client.submit(#"{"prompt": "\#(String(repeating: "b", count: 100))"}"#)
            #expect(response.status == .contentTooLarge)
            #expect(try await client.submit(#"{"prompt": "short"}"#).status == .created)
        }
    }

    @Test func listFiltersByStateAndPages() async throws {
        let server = try TestServer()
        try await server.test { client in
            var ids: [String] = []
            for index in 0..<4 { ids.append(try await client.submitJob(#"{"prompt": "fox \#(index)"}"#)) }
            #expect(try await client.execute(uri: "/v1/jobs/\(ids[1])", method: .delete).status == .ok)

            // Newest first, two to a page, queued only: ids 3, 2, then 0.
            let first = try await client.execute(uri: "/v1/jobs?state=queued&limit=2", method: .get)
            #expect(first.status == .ok)
            let firstPage = try first.object()
            let firstIDs = (firstPage["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String }
            #expect(firstIDs == [ids[3], ids[2]])
            let next = try #require(firstPage["next"] as? String)
            #expect(next == ids[2])

            let second = try await client.execute(uri: "/v1/jobs?state=queued&limit=2&before=\(next)", method: .get)
            let secondPage = try second.object()
            #expect((secondPage["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == [ids[0]])
            #expect(secondPage["next"] is NSNull)

            let cancelled = try await client.execute(uri: "/v1/jobs?state=cancelled", method: .get).object()
            #expect((cancelled["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == [ids[1]])

            let all = try await client.execute(uri: "/v1/jobs", method: .get).object()
            #expect((all["data"] as? [Any])?.count == 4)
        }
    }

    @Test(arguments: [
        ("/v1/jobs?state=paused", "state"),
        ("/v1/jobs?limit=0", "limit"),
        ("/v1/jobs?limit=501", "limit"),
        ("/v1/jobs?limit=ten", "limit"),
        ("/v1/jobs?before=job_unknown", "before"),
        ("/v1/jobs?colour=red", "colour"),
    ])
    func badListParametersAre400(uri: String, field: String) async throws {
        let server = try TestServer()
        try await server.test { client in
            let response = try await client.execute(uri: uri, method: .get)
            #expect(response.status == .badRequest)
            #expect(try response.apiError()["field"] as? String == field)
        }
    }

    @Test func unknownJobIs404WithTheErrorShape() async throws {
        let server = try TestServer()
        try await server.test { client in
            for method in [HTTPRequest.Method.get, .delete] {
                let response = try await client.execute(uri: "/v1/jobs/job_nope", method: method)
                #expect(response.status == .notFound)
                let error = try response.apiError()
                #expect(error["code"] as? String == "not_found")
                #expect((error["message"] as? String)?.contains("job_nope") == true)
                #expect(error["field"] is NSNull)
            }
            let events = try await client.execute(uri: "/v1/jobs/job_nope/events", method: .get)
            #expect(events.status == .notFound)
            let route = try await client.execute(uri: "/v2/nothing", method: .get)
            #expect(route.status == .notFound)
            #expect(try route.apiError()["code"] as? String == "not_found")
        }
    }

    @Test func cancellingAQueuedJobCancelsItAndPublishesAnEvent() async throws {
        let server = try TestServer()
        try await server.test { client in
            let id = try await client.submitJob()
            let events = server.scheduler.store.updates()
            let response = try await client.execute(uri: "/v1/jobs/\(id)", method: .delete)
            #expect(response.status == .ok)
            let job = try response.object()
            #expect(job["state"] as? String == "cancelled")
            #expect(job["finished_at"] is String)
            var iterator = events.makeAsyncIterator()
            let event = try #require(await iterator.next())
            #expect(event.kind == .cancelled)
            #expect(event.job == id)
            #expect(try await server.store.counts()[.cancelled] == 1)

            // Cancelling again changes nothing and still answers with the job.
            let again = try await client.execute(uri: "/v1/jobs/\(id)", method: .delete)
            #expect(again.status == .ok)
            #expect(try again.object()["state"] as? String == "cancelled")

            let log = try await client.execute(uri: "/v1/jobs/\(id)/events", method: .get).object()
            let kinds = (log["data"] as? [[String: Any]])?.compactMap { $0["kind"] as? String }
            #expect(kinds == ["queued", "cancelled"])
        }
    }

    @Test func cancellingARunningJobFlagsIt() async throws {
        let server = try TestServer()
        try await server.test { client in
            let id = try await client.submitJob()
            _ = try await server.store.claim(
                owner: "test/cpu", slot: "cpu", leaseExpiresAt: Date().addingTimeInterval(60), now: Date())
            let response = try await client.execute(uri: "/v1/jobs/\(id)", method: .delete)
            #expect(response.status == .ok)
            let job = try response.object()
            #expect(job["state"] as? String == "running")
            #expect(job["cancel_requested"] as? Bool == true)
            #expect(job["attempts"] as? Int == 1)
        }
    }
}
