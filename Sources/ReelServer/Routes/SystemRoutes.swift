import Foundation
import Hummingbird
import ReelScheduler
import ReelStore

/// `GET /healthz`, `GET /readyz`, `GET /v1/workers`, `GET /metrics` and `GET /openapi.json`.
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
        let tenant = Caller.current.owner
        guard let directory = service.store as? any ClusterDirectory else {
            guard tenant != nil else { return try APIJSON.response(DataList(data: service.scheduler.workers)) }
            let local = try slots(from: APIJSON.makeEncoder().encode(service.scheduler.workers))
            return try Self.json(["data": await visible(local)])
        }
        let local = try slots(from: APIJSON.makeEncoder().encode(service.scheduler.workers))
        let me = service.scheduler.configuration.node
        let nodes = try await directory.nodes()
        var all: [[String: Any]] = local.map { slot in
            slot.merging(
                ["stale": false, "node_url": nodes.first { $0.name == me }?.url ?? NSNull()]) { _, new in new }
        }
        for node in nodes where node.name != me {
            let stale = node.secondsSinceHeartbeat > ClusterService.staleAfterSeconds
            for slot in (try? slots(from: node.workers)) ?? [] {
                all.append(
                    slot.merging([
                        "node": node.name, "node_url": node.url, "stale": stale,
                        "heartbeat_age_seconds": (node.secondsSinceHeartbeat * 10).rounded() / 10,
                    ]) { _, new in new })
            }
        }
        // By node name; each node's slots in its own order.
        let byNode = all.enumerated().sorted { a, b in
            let (nameA, nameB) = (a.element["node"] as? String ?? "", b.element["node"] as? String ?? "")
            return nameA != nameB ? nameA < nameB : a.offset < b.offset
        }.map(\.element)
        return try Self.json(["data": await visible(byNode)])
    }

    /// `slots` with the ids and progress of jobs the current caller may not see replaced by null (each job asked of
    /// the store once).
    private func visible(_ slots: [[String: Any]]) async -> [[String: Any]] {
        guard Caller.current.owner != nil else { return slots }
        var seen: [String: Bool] = [:]
        var result: [[String: Any]] = []
        for var slot in slots {
            if let id = slot["job"] as? String {
                if seen[id] == nil {
                    let job = try? await service.store.job(id: id)
                    seen[id] = job.map { Caller.current.canSee($0) } ?? false
                }
                if seen[id] != true {
                    for field in ["job", "stage", "step", "total_steps", "steps_per_second"] where slot[field] != nil {
                        slot[field] = NSNull()
                    }
                }
            }
            result.append(slot)
        }
        return result
    }

    private static func json(_ object: [String: Any]) throws -> Response {
        let body = ByteBuffer(
            data: try JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes, .sortedKeys]))
        return Response(
            status: .ok,
            headers: [.contentType: "application/json; charset=utf-8", .contentLength: String(body.readableBytes)],
            body: ResponseBody(byteBuffer: body))
    }

    private func slots(from json: Data) throws -> [[String: Any]] {
        try JSONSerialization.jsonObject(with: json) as? [[String: Any]] ?? []
    }
}
