#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The process's limit on open file descriptors (`RLIMIT_NOFILE`), and how many connections it leaves room for.
public enum DescriptorLimit {
    /// The soft limit now in force.
    public static var current: Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        return limit.rlim_cur == rlim_t.max ? Int(Int32.max) : Int(limit.rlim_cur)
    }

    /// Raises the soft limit to the hard limit (at most `ceiling`), as a server that holds many connections
    /// should; returns the soft limit now in force. Where the hard limit is the soft one, nothing changes.
    @discardableResult
    public static func raiseSoftLimit(ceiling: Int = 1 << 20) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return current }
        let hard = limit.rlim_max == rlim_t.max ? rlim_t(ceiling) : min(limit.rlim_max, rlim_t(ceiling))
        if limit.rlim_cur != rlim_t.max && limit.rlim_cur < hard {
            limit.rlim_cur = hard
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return current
    }

    /// Descriptors kept for everything but client connections: the store, worker pipes, logs, the listener.
    public static let reserved = 64
    /// The most connections allowed whatever the limit: each costs memory as well as a descriptor.
    public static let maxConnections = 10_000

    /// The connections to allow with `descriptors` open files: half of what the reserve leaves, since a connection
    /// that downloads a video holds the file open too.
    public static func connectionCap(descriptors: Int) -> Int {
        max(8, min(maxConnections, (descriptors - reserved) / 2))
    }
}
