import Foundation
import ReelCore
import ReelStore
import Synchronization

/// ComfyUI's WebSocket messages from Reel's job updates: `status` to every socket of the job's tenant when its
/// queue changes, and the execution messages to the socket whose id is the prompt's `client_id`. A job's update is
/// published after its change is committed, so `/history` already has a finished job when `execution_success`
/// and `executing {node: null}` go out.
final class ComfyHub: Sendable {
    /// One open socket: its id (`clientId`), its tenant, and where its text frames go, in order.
    struct Session: Sendable {
        var sid: String
        var owner: String?
        var send: @Sendable (String) -> Void
    }

    private let sessions = Mutex<[Int: Session]>([:])
    private let nextID = Atomic<Int>(0)
    /// Per job: the last stage reported, to send `executing` once per node.
    private let stages = Mutex<[String: String]>([:])

    func add(_ session: Session) -> Int {
        let id = nextID.add(1, ordering: .relaxed).newValue
        sessions.withLock { $0[id] = session }
        return id
    }

    func remove(_ id: Int) {
        sessions.withLock { $0[id] = nil }
    }

    var count: Int { sessions.withLock { $0.count } }

    static func message(_ type: String, _ data: ComfyValue) -> String {
        let value: ComfyValue = ["type": .string(type), "data": data]
        return String(decoding: (try? JSONEncoder().encode(value)) ?? Data(), as: UTF8.self)
    }

    static func status(queueRemaining: Int, sid: String?) -> String {
        var data: [String: ComfyValue] = ["status": ["exec_info": ["queue_remaining": .integer(Int64(queueRemaining))]]]
        if let sid { data["sid"] = .string(sid) }
        return message("status", .object(data))
    }

    /// Follows the job store's updates until the stream ends.
    func run(service: ComfyService) async {
        for await update in service.jobs.store.updates() {
            guard count > 0, ComfyService.isPromptID(update.job) else { continue }
            await handle(update, service: service)
        }
    }

    private func handle(_ update: JobUpdate, service: ComfyService) async {
        let owner = update.owner
        let targets = sessions.withLock { $0.values.filter { $0.owner == owner || owner == nil } }
        guard !targets.isEmpty else { return }
        let envelope = try? await Caller.$current.withValue(Caller(owner: owner)) {
            try await service.envelope(of: update.job)
        }
        let client =
            envelope.flatMap { envelope in
                envelope.clientID.map { id in targets.filter { $0.sid == id } } ?? []
            } ?? []
        let prompt = ComfyValue.string(update.job)
        let now = ComfyValue.integer(Int64(update.at.timeIntervalSince1970 * 1000))
        func toClient(_ type: String, _ data: ComfyValue) {
            let text = Self.message(type, data)
            for session in client { session.send(text) }
        }
        func executing(_ node: String?) {
            let id: ComfyValue = node.map(ComfyValue.string) ?? .null
            toClient("executing", ["node": id, "display_node": id, "prompt_id": prompt])
        }
        func status() async {
            let remaining =
                (try? await Caller.$current.withValue(Caller(owner: owner)) { try await service.queueRemaining() }) ?? 0
            let text = Self.status(queueRemaining: remaining, sid: nil)
            for session in targets { session.send(text) }
        }
        switch update.kind {
        case .queued, .requeued, .cancelRequested:
            await status()
        case .started, .resumed:
            stages.withLock { $0[update.job] = nil }
            toClient("execution_start", ["prompt_id": prompt, "timestamp": now])
            toClient("execution_cached", ["nodes": [], "prompt_id": prompt, "timestamp": now])
            if let envelope {
                for node in envelope.executionOrder
                where !["KSampler", "KSamplerAdvanced", "VAEDecode", "CreateVideo", "SaveVideo"].contains(
                    envelope.classes[node] ?? "")
                {
                    executing(node)
                }
            }
            await status()
        case .progress:
            guard let envelope, let progress = update.progress else { return }
            let node: String?
            switch progress.stage {
            case "denoising":
                let second = envelope.switchStep.map { progress.step > $0 } ?? false
                node = second ? envelope.samplerNodes.last : envelope.samplerNodes.first
            case "vae_decode":
                node = envelope.executionOrder.first { envelope.classes[$0] == "VAEDecode" }
            case "encoding", "interpolating":
                node = envelope.executionOrder.first { envelope.classes[$0] == "CreateVideo" }
            default:
                node = nil
            }
            guard let node else { return }
            let fresh = stages.withLock { stages in
                defer { stages[update.job] = node }
                return stages[update.job] != node
            }
            if fresh { executing(node) }
            if progress.stage == "denoising" {
                toClient(
                    "progress",
                    [
                        "value": .integer(Int64(progress.step)), "max": .integer(Int64(progress.total)),
                        "prompt_id": prompt, "node": .string(node),
                    ])
            }
        case .succeeded:
            stages.withLock { $0[update.job] = nil }
            if let envelope {
                executing(envelope.outputNode)
                toClient(
                    "executed",
                    [
                        "node": .string(envelope.outputNode), "display_node": .string(envelope.outputNode),
                        "output": envelope.uiOutput(promptID: update.job), "prompt_id": prompt,
                    ])
            }
            toClient("execution_success", ["prompt_id": prompt, "timestamp": now])
            executing(nil)
            await status()
        case .failed:
            stages.withLock { $0[update.job] = nil }
            if let envelope, let job = try? await service.jobs.store.job(id: update.job) {
                toClient("execution_error", service.executionError(job, envelope, at: update.at))
            }
            executing(nil)
            await status()
        case .cancelled:
            stages.withLock { $0[update.job] = nil }
            let text = Self.message(
                "execution_interrupted", ComfyService.executionInterrupted(update.job, envelope, at: update.at))
            for session in targets { session.send(text) }
            executing(nil)
            await status()
        default:
            break
        }
    }
}
