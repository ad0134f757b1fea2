import Hummingbird
import ReelAPI
import ReelCore
import ReelStore

/// `GET /v1/loras`: the LoRA library a job's `loras` may name, each file with its size, SHA-256, key format, rank
/// and the models it fits, read from the directory as it is now.
struct LoRARoutes {
    let jobs: JobService

    func register(on router: Router<BasicRequestContext>) {
        router.get("/v1/loras") { _, _ in
            let fit = ModelFit(jobs.model).name
            let catalog = jobs.loraCatalog
            return try APIJSON.response(DataList(data: catalog.entries.map { LoRAResource($0, serverFit: fit) }))
        }
    }
}

extension LoRAResource {
    init(_ entry: LoRAEntry, serverFit: String) {
        self.init(
            name: entry.name, bytes: entry.bytes, sha256: entry.sha256, format: entry.info?.format,
            rank: entry.info?.rank, dim: entry.info?.dim, blocks: entry.info?.blocks, architectures: entry.info?.fits,
            fitsServer: entry.info?.fits.contains(serverFit) ?? false, error: entry.problem)
    }
}
