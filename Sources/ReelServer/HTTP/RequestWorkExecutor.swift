import Foundation
import Hummingbird
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A few threads of their own, at a lower priority, for the requests that carry a body: parsing a 16 MiB batch,
/// checking 10,000 rows and encoding the answer takes the CPU for seconds, and on Swift's shared pool (one thread
/// per core) that held every other request up, `/healthz` included. Here such work queues behind itself while the
/// shared pool stays free for everything else, and the kernel favours the threads that answer quickly.
final class RequestWorkExecutor: TaskExecutor, @unchecked Sendable {
    /// The executor every body-carrying request runs on.
    static let shared = RequestWorkExecutor(threads: max(1, ProcessInfo.processInfo.activeProcessorCount / 2))

    private let condition = NSCondition()
    // Guarded by `condition`.
    private var jobs: [UnownedJob] = []

    init(threads: Int, niceness: Int32 = 10) {
        for index in 0..<threads {
            let thread = Thread { [self] in
                #if canImport(Glibc)
                    // On Linux the nice value is per thread, and "0" is the calling one: these threads yield to the
                    // NIO and Swift concurrency threads.
                    _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness)
                #endif
                run()
            }
            thread.name = "reel-request-work-\(index)"
            thread.start()
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}

/// Runs the handlers of the requests whose cost grows with what they carry or ask for on `RequestWorkExecutor`:
/// bodies over `smallBody` bytes (or of a length not declared), and a batch's status and report (up to 10,000 rows
/// read and encoded). Small bodies are parsed where they arrive, so a job of a few hundred bytes never waits
/// behind a 16 MiB batch in that executor's queue.
struct RequestWorkMiddleware<Context: RequestContext>: RouterMiddleware {
    static var smallBody: Int { 64 << 10 }

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    )
        async throws -> Response
    {
        guard Self.isHeavy(request) else { return try await next(request, context) }
        return try await withTaskExecutorPreference(RequestWorkExecutor.shared) {
            try await next(request, context)
        }
    }

    static func isHeavy(_ request: Request) -> Bool {
        switch request.method {
        case .post, .put, .patch:
            guard let declared = request.headers[.contentLength], let length = Int(declared) else { return true }
            return length > smallBody
        case .get, .head:
            return request.uri.path.hasPrefix("/v1/batches/")
        default:
            return false
        }
    }
}
