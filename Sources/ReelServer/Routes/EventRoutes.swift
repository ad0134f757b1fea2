import HTTPTypes
import Hummingbird
import ReelCore
import ReelScheduler
import ReelStore

/// `GET /v1/events`: every job's events as they happen, as Server-Sent Events; `?job=ID` for one job's. A tenant
/// sees only its own jobs' events.
struct EventRoutes {
    let service: JobService
    let configuration: ReelServerConfiguration

    func register(on router: Router<BasicRequestContext>) {
        router.get("/v1/events") { request, _ in
            let query = request.uri.queryParameters
            for (name, _) in query where name != "job" {
                throw ReelError.invalid(
                    String(name.unicodeScalars.prefix(60)),
                    "unknown query parameter \(name.quotedForMessage(limit: 60)); only job is understood")
            }
            let jobID = query["job"].flatMap { $0.isEmpty ? nil : String($0) }
            // Another tenant's job is a 404, as everywhere.
            if let jobID { _ = try await service.job(id: jobID) }
            // Subscribed before the response leaves, so no event published after this request is missed.
            var visible = EventStream(
                events: service.store.updates(), jobID: jobID, heartbeat: configuration.heartbeatInterval)
            if let owner = Caller.current.owner, jobID == nil {
                // Every update carries its job's owner.
                visible.isVisible = { $0.owner == owner }
            }
            let stream = visible
            var headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
            if let buffering = HTTPField.Name("X-Accel-Buffering") { headers[buffering] = "no" }
            return Response(
                status: .ok, headers: headers, body: ResponseBody { writer in try await stream.write(to: &writer) })
        }
    }
}
