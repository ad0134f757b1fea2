import Hummingbird
import ReelScheduler

/// `GET /healthz`, `GET /readyz`, `GET /v1/workers` and `GET /metrics`.
struct SystemRoutes {
    let service: JobService
    let metrics: ReelMetricsRegistry

    private struct Status: Encodable {
        var status: String
    }

    func register(on router: Router<BasicRequestContext>) {
        // Alive while the process answers at all.
        router.get("/healthz") { _, _ in try APIJSON.response(Status(status: "ok")) }
        // Ready while a worker can take a job: a load balancer sends work elsewhere meanwhile.
        router.get("/readyz") { _, _ in
            service.scheduler.isReady
                ? try APIJSON.response(Status(status: "ready"))
                : try APIJSON.response(Status(status: "not_ready"), status: .serviceUnavailable)
        }
        router.get("/v1/workers") { _, _ in try APIJSON.response(DataList(data: service.scheduler.workers)) }
        router.get("/metrics") { _, _ in
            let text = try await metrics.render(store: service.store, scheduler: service.scheduler)
            let body = ByteBuffer(string: text)
            return Response(
                status: .ok,
                headers: [
                    .contentType: "text/plain; version=0.0.4; charset=utf-8",
                    .contentLength: String(body.readableBytes),
                ],
                body: ResponseBody(byteBuffer: body))
        }
    }
}
