import Foundation
import Synchronization

/// What a client submits: the spec plus queueing details.
public struct NewJob: Sendable, Equatable {
    public var id: String
    public var spec: GenerationSpec
    public var priority: Int
    public var idempotencyKey: String?
    /// A digest of the request body, to tell a retry of the same request from a different one under the same key.
    public var requestDigest: String?
    public var batchID: String?
    /// The tenant (an API key's id) the job belongs to; nil on a server without keys.
    public var owner: String?

    public init(
        id: String = NewJob.makeID(), spec: GenerationSpec, priority: Int = 0, idempotencyKey: String? = nil,
        requestDigest: String? = nil, batchID: String? = nil, owner: String? = nil
    ) {
        self.id = id
        self.spec = spec
        self.priority = priority
        self.idempotencyKey = idempotencyKey
        self.requestDigest = requestDigest
        self.batchID = batchID
        self.owner = owner
    }

    /// A job id: sortable by creation time (and by order of creation within this process), unguessable.
    public static func makeID(now: Date = Date()) -> String {
        let millis = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        let sequence = idSequence.add(1, ordering: .relaxed).newValue % 1_679_616  // 36^4
        let random = UInt64.random(in: 0..<(1 << 40))
        return "job_" + pad(String(millis, radix: 36), 9) + pad(String(sequence, radix: 36), 4)
            + pad(String(random, radix: 36), 8)
    }

    private static let idSequence = Atomic<UInt64>(0)

    private static func pad(_ text: String, _ width: Int) -> String {
        String(repeating: "0", count: max(0, width - text.count)) + text
    }
}
