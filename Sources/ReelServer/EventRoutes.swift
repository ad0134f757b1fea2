import HTTPTypes
import Hummingbird
import ReelCore
import ReelScheduler

/// `GET /v1/events`: every job's events as they happen, as Server-Sent Events; `?job=ID` for one job's.
struct EventRoutes {
    let service: JobService
    let configuration: ReelServerConfiguration

    func register(on router: Router<BasicRequestContext>) {
        router.get("/v1/events") { request, _ in
            let query = request.uri.queryParameters
            for (name, _) in query where name != "job" {
                throw ReelError.invalid(String(name), "unknown query parameter '\(name)'; only job is understood")
            }
            let jobID = query["job"].flatMap { $0.isEmpty ? nil : String($0) }
            if let jobID { _ = try await service.job(id: jobID) }
            // Subscribed before the response leaves, so no event published after this request is missed.
            let stream = EventStream(
                events: service.scheduler.bus.subscribe(), jobID: jobID, heartbeat: configuration.heartbeatInterval)
            var headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
            if let buffering = HTTPField.Name("X-Accel-Buffering") { headers[buffering] = "no" }
            return Response(
                status: .ok, headers: headers, body: ResponseBody { writer in try await stream.write(to: &writer) })
        }
    }
}
