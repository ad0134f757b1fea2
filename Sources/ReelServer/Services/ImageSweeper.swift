import Foundation
import Logging
import ReelStore
import ServiceLifecycle

/// Keeps the images to the retention rule (`ImageStore`): every `interval`, the images no job names that have gone
/// unused for a day are removed, both this node's files and the job store's rows. Which images jobs name is read
/// from the store, a page at a time, so a large store costs time linear in its jobs and little memory; the store's
/// rows go in one statement of its own that keeps every row a job names (`JobStore.deleteUnusedImages`), so any
/// node of a cluster may sweep at any time.
public struct ImageSweeper: Service {
    public let service: JobService
    public let interval: Duration
    public let logger: Logger

    public init(service: JobService, interval: Duration = .seconds(3600), logger: Logger) {
        self.service = service
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled && !Task.isShuttingDownGracefully {
                    do {
                        let removed = try await sweep()
                        if removed.files > 0 || removed.rows > 0 {
                            logger.info(
                                "removed images no job names: \(removed.files) files here, \(removed.rows) from the store"
                            )
                        }
                    } catch {
                        logger.warning("could not sweep the image store: \(error)")
                    }
                    try? await Task.sleep(for: interval)
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }

    /// One sweep: the SHA-256s every job names are kept; returns how many of this node's files, and how many of the
    /// job store's images, were removed.
    @discardableResult
    public func sweep(now: Date = Date()) async throws -> (files: Int, rows: Int) {
        var named = Set<String>()
        var after: String?
        while true {
            let page = try await service.store.jobs(matching: JobQuery(after: after, limit: 500))
            for job in page {
                if let image = job.spec.image { named.insert(image.sha256) }
                if let image = job.spec.lastImage { named.insert(image.sha256) }
            }
            guard page.count == 500, let last = page.last else { break }
            after = last.id
        }
        let files = service.images.sweep(keeping: named, now: now)
        let rows = try await service.store.deleteUnusedImages(unusedFor: service.images.unusedRetention, now: now)
        return (files, rows)
    }
}
