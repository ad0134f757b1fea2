import ReelCore
import ReelStore

/// Who is making the current request: the tenant whose jobs it may see, create and delete.
///
/// `AuthMiddleware` binds it for the duration of each request's handler, so that `JobService` scopes every lookup,
/// listing and submission without each route passing it along, and a route added later is scoped too. The
/// router's context stays `BasicRequestContext`. Outside a request (the scheduler, the CLI, tests calling the
/// service directly) and on a server without keys, the caller is `.unrestricted`.
public struct Caller: Sendable, Equatable {
    /// The tenant (an API key's id), or nil for a caller that sees every job.
    public var owner: String?

    public init(owner: String?) {
        self.owner = owner
    }

    /// No tenant: every job is visible, and new jobs have no owner.
    public static let unrestricted = Caller(owner: nil)

    @TaskLocal public static var current: Caller = .unrestricted

    /// Whether this caller may see `job`: always without a tenant, otherwise only the tenant's own jobs (so a job
    /// made before keys were configured belongs to nobody once they are).
    public func canSee(_ job: Job) -> Bool {
        owner == nil || job.owner == owner
    }
}
