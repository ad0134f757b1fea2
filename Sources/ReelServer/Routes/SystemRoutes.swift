import Foundation
import Hummingbird
import ReelAPI
import ReelScheduler
import ReelStore

/// `GET /healthz`, `GET /readyz`, `GET /v1/workers`, `GET /metrics` and `GET /openapi.json`.
struct SystemRoutes {
    let service: JobService
    let metrics: ReelMetricsRegistry

    func register(on router: Router<BasicRequestContext>) {
        // Alive while the process answers at all.
        router.get("/healthz") { _, _ in try APIJSON.response(HealthStatus(status: "ok")) }
        // Ready while a worker can take a job: a load balancer sends work elsewhere meanwhile.
        router.get("/readyz") { _, _ in
            service.scheduler.isReady
                ? try APIJSON.response(HealthStatus(status: "ready"))
                : try APIJSON.response(HealthStatus(status: "not_ready"), status: .serviceUnavailable)
        }
        router.get("/v1/workers") { _, _ in try await workers() }
        // The contract of every route here (docs/openapi.json, embedded by scripts/embed-web.py).
        router.get("/openapi.json") { _, _ in
            let body = ByteBuffer(string: OpenAPIDocument.json)
            return Response(
                status: .ok,
                headers: [.contentType: "application/json; charset=utf-8", .contentLength: String(body.readableBytes)],
                body: ResponseBody(byteBuffer: body))
        }
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

    /// Every slot of this node, live; with a shared store, every other node's slots as of its last heartbeat too.
    /// Each slot says which node it is on (`node`, `node_url`) and whether that node's heartbeat is older than
    /// `ClusterService.staleAfterSeconds` (`stale`: the node may be dead, and the slot's state is its last known).
    ///
    /// A tenant sees every slot, but the id and progress of a job only when the job is its own: another key's job
    /// shows as a busy slot with `job: null` and no stage or step, as no other route lets it see that job either.
    private func workers() async throws -> Response {
        let local = service.scheduler.workers.map(WorkerResource.init)
        guard let directory = service.store as? any ClusterDirectory else {
            return try APIJSON.response(DataList(data: await visible(local)))
        }
        let me = service.scheduler.configuration.node
        let nodes = try await directory.nodes()
        let myURL = nodes.first { $0.name == me }?.url
        var all = local.map { slot in
            var slot = slot
            slot.stale = false
            slot.nodeURL = myURL
            return slot
        }
        let decoder = WireJSON.makeDecoder()
        for node in nodes where node.name != me {
            let stale = node.secondsSinceHeartbeat > ClusterService.staleAfterSeconds
            // A node's heartbeat holds its slots as its own /v1/workers lists them.
            for var slot in (try? decoder.decode([WorkerResource].self, from: node.workers)) ?? [] {
                slot.node = node.name
                slot.nodeURL = node.url
                slot.stale = stale
                slot.heartbeatAgeSeconds = (node.secondsSinceHeartbeat * 10).rounded() / 10
                all.append(slot)
            }
        }
        // By node name; each node's slots in its own order.
        let byNode = all.enumerated().sorted { a, b in
            let (nameA, nameB) = (a.element.node ?? "", b.element.node ?? "")
            return nameA != nameB ? nameA < nameB : a.offset < b.offset
        }.map(\.element)
        return try APIJSON.response(DataList(data: await visible(byNode)))
    }

    /// `slots` with the ids and progress of jobs the current caller may not see withheld (each job asked of the store
    /// once).
    private func visible(_ slots: [WorkerResource]) async -> [WorkerResource] {
        guard Caller.current.owner != nil else { return slots }
        var seen: [String: Bool] = [:]
        var result: [WorkerResource] = []
        for var slot in slots {
            if let id = slot.job {
                if seen[id] == nil {
                    let job = try? await service.store.job(id: id)
                    seen[id] = job.map { Caller.current.canSee($0) } ?? false
                }
                if seen[id] != true {
                    slot.job = nil
                    slot.jobWithheld = true
                    slot.stage = nil
                    slot.step = nil
                    slot.totalSteps = nil
                    slot.stepsPerSecond = nil
                }
            }
            result.append(slot)
        }
        return result
    }
}
