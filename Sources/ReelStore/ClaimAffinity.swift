import Crypto
import Foundation
import ReelCore

/// What a claimer holds, for claiming a job that needs no LoRA switch first: the key of the LoRA set its worker has
/// applied, and how long a job may be passed over for that reason.
///
/// The rule (the same in every store): the head of the queue is taken when its set is the held one; otherwise the
/// oldest queued job of the head's priority with the held set is taken instead, and every job ahead of it is marked
/// as passed over at that moment (a mark a job keeps until it is claimed). Once any job ahead has been passed over
/// for `window` seconds, the head is taken again, in order, until none is: no job waits more than `window` seconds
/// past its turn because of affinity. A window of 0 is the plain claim order.
public struct ClaimAffinity: Sendable, Equatable {
    /// `GenerationSpec.loraKey` of the set held; "" for the base model.
    public var loraKey: String
    public var window: TimeInterval

    public init(loraKey: String, window: TimeInterval) {
        self.loraKey = loraKey
        self.window = window
    }

    /// Whether the head of the queue, of set `headKey`, is to be taken without looking further.
    func takesHead(headKey: String) -> Bool { window <= 0 || headKey == loraKey }

    /// Whether a job may be taken ahead of jobs the oldest mark of which is `oldestPassedOver` (nil: none marked).
    func mayPassOver(oldestPassedOver: Date?, now: Date) -> Bool {
        guard let oldestPassedOver else { return true }
        return now.timeIntervalSince(oldestPassedOver) < window
    }
}

extension GenerationSpec {
    /// The key of the LoRA set a worker applies for this job: the SHA-256 of `adapterSet`, or "" for none. Stored
    /// with each job (`lora_key`) for the affinity claim.
    public var loraKey: String {
        let set = adapterSet
        return set.isEmpty ? "" : SHA256.hash(data: Array(set.utf8)).hexDigits
    }
}
