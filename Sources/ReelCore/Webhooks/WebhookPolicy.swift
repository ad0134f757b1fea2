import Foundation

/// Where a webhook may be sent: an `http` or `https` URL whose host passes the allow-list, and whose addresses
/// (the literal, or every address its name resolves to, checked again at connect time) are public unless the
/// allow-list names them. Loopback, link-local, private, shared (CGNAT), unspecified, multicast and reserved
/// addresses are refused by default, so a job cannot make the server call its own network.
public struct WebhookDestinationPolicy: Sendable, Equatable {
    /// An allow-list entry: a host name (exact, or `*.example.com` for its subdomains) or a CIDR block.
    public enum Entry: Sendable, Equatable {
        case host(String)
        case suffix(String)
        case network(IPAddress, prefix: Int)
    }

    public var allow: [Entry]
    /// With an empty allow-list: whether any public host may be named (true), or none (false).
    public var anyPublicHost: Bool

    public init(allow: [Entry] = [], anyPublicHost: Bool = true) {
        self.allow = allow
        self.anyPublicHost = anyPublicHost
    }

    /// `--webhook-allow` entries, comma-separated: `hooks.example.com`, `*.example.com`, `10.0.0.0/8`, `::1/128`.
    public static func parse(_ text: String) throws(ReelError) -> [Entry] {
        var entries: [Entry] = []
        for raw in text.split(separator: ",") {
            let item = raw.trimmingCharacters(in: .whitespaces).lowercased()
            guard !item.isEmpty else { continue }
            if let slash = item.firstIndex(of: "/") {
                guard let address = IPAddress(String(item[..<slash])),
                    let prefix = Int(item[item.index(after: slash)...]),
                    (0...address.bits).contains(prefix)
                else {
                    throw .invalid("webhook-allow", "\(item.quotedForMessage()) is not a CIDR block such as 10.0.0.0/8")
                }
                entries.append(.network(address, prefix: prefix))
            } else if let address = IPAddress(item) {
                entries.append(.network(address, prefix: address.bits))
            } else if item.hasPrefix("*.") {
                entries.append(.suffix(String(item.dropFirst(1))))
            } else {
                guard item.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." }) else {
                    throw .invalid("webhook-allow", "\(item.quotedForMessage()) is not a host name or CIDR block")
                }
                entries.append(.host(item))
            }
        }
        return entries
    }

    /// Checks a URL as a job or key names it; the error names `field`. Returns the host to resolve.
    public func check(url text: String, field: String = "webhook_url") throws(ReelError) -> URLComponents {
        guard text.utf8.count <= 2048, let url = URLComponents(string: text), let scheme = url.scheme?.lowercased(),
            scheme == "https" || scheme == "http", let host = url.host?.lowercased(), !host.isEmpty
        else {
            throw .invalid(field, "\(field) must be an http or https URL, not \(text.quotedForMessage(limit: 80))")
        }
        guard url.user == nil && url.password == nil else {
            throw .invalid(field, "\(field) may not carry a user name or password; sign with the webhook secret")
        }
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if let address = IPAddress(bare) {
            try check(address: address, host: bare, field: field)
        } else if !hostAllowed(bare) {
            throw .invalid(
                field,
                allow.isEmpty
                    ? "\(field): this server sends webhooks to no host; start it with --webhook-allow \(bare)"
                    : "\(field): \(bare) is not in the server's --webhook-allow list")
        }
        return url
    }

    /// Checks an address the host resolved to (at connect time, for every address) or was written as.
    public func check(address: IPAddress, host: String, field: String = "webhook_url") throws(ReelError) {
        if allow.contains(where: {
            if case .network(let net, let prefix) = $0 { net.contains(address, prefix: prefix) } else { false }
        }) {
            return
        }
        if let kind = address.specialUse {
            throw .invalid(
                field,
                "\(field): \(host) is \(address) (\(kind)); webhooks go to public addresses unless --webhook-allow "
                    + "names it")
        }
        if allow.isEmpty && !anyPublicHost {
            throw .invalid(field, "\(field): this server sends webhooks to no host; start it with --webhook-allow")
        }
        // A name passes by the host entries; an address written as such only by a network entry (above), or by
        // an empty list that lets any public host be named.
        guard IPAddress(host) == nil ? hostAllowed(host) : allow.isEmpty else {
            throw .invalid(field, "\(field): \(host) is not in the server's --webhook-allow list")
        }
    }

    func hostAllowed(_ host: String) -> Bool {
        if allow.isEmpty { return anyPublicHost }
        return allow.contains { entry in
            switch entry {
            case .host(let name): name == host
            case .suffix(let suffix): host.hasSuffix(suffix) && host.count > suffix.count
            case .network: false
            }
        }
    }
}

/// An IPv4 or IPv6 address, as 4 or 16 bytes.
public struct IPAddress: Sendable, Equatable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]

    public var bits: Int { bytes.count * 8 }

    public init?(_ text: String) {
        if text.contains(":") {
            guard let bytes = Self.parse6(text) else { return nil }
            self.bytes = bytes
        } else {
            let parts = text.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4 else { return nil }
            var bytes: [UInt8] = []
            for part in parts {
                guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCII), let n = UInt8(part),
                    part == "0" || !part.hasPrefix("0")
                else { return nil }
                bytes.append(n)
            }
            self.bytes = bytes
        }
    }

    public init(bytes: [UInt8]) { self.bytes = bytes }

    static func parse6(_ text: String) -> [UInt8]? {
        var text = Substring(text)
        if let percent = text.firstIndex(of: "%") { text = text[..<percent] }  // a zone: fe80::1%eth0
        var tail4: [UInt8] = []
        if let lastColon = text.lastIndex(of: ":"), text[text.index(after: lastColon)...].contains(".") {
            guard let v4 = IPAddress(String(text[text.index(after: lastColon)...])), v4.bytes.count == 4 else {
                return nil
            }
            tail4 = v4.bytes
            text = text[...lastColon] + "0:0"
        }
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ s: String) -> [UInt16]? {
            if s.isEmpty { return [] }
            var out: [UInt16] = []
            for g in s.split(separator: ":", omittingEmptySubsequences: false) {
                guard !g.isEmpty, g.count <= 4, let v = UInt16(g, radix: 16) else { return nil }
                out.append(v)
            }
            return out
        }
        guard let head = groups(halves[0]), let rest = halves.count == 2 ? groups(halves[1]) : [] else { return nil }
        var all = head
        if halves.count == 2 {
            guard head.count + rest.count < 8 else { return nil }
            all += Array(repeating: 0, count: 8 - head.count - rest.count) + rest
        }
        guard all.count == 8 else { return nil }
        var bytes = all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
        if !tail4.isEmpty { bytes.replaceSubrange(12..<16, with: tail4) }
        return bytes
    }

    public var description: String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        return stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            .joined(separator: ":")
    }

    /// Whether this address is in `network/prefix` (of the same family).
    public func contains(_ other: IPAddress, prefix: Int) -> Bool {
        guard other.bytes.count == bytes.count, prefix <= bits else { return false }
        var left = prefix
        for i in 0..<bytes.count where left > 0 {
            let mask: UInt8 = left >= 8 ? 0xff : ~(0xff >> UInt8(left))
            if bytes[i] & mask != other.bytes[i] & mask { return false }
            left -= 8
        }
        return true
    }

    /// What a non-public address is for (RFC 6890's special-purpose registries), or nil for a public one. An
    /// IPv4-mapped IPv6 address is judged as its IPv4 address.
    public var specialUse: String? {
        if bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
            return IPAddress(bytes: Array(bytes[12...])).specialUse
        }
        let table: [(String, Int, String)] =
            bytes.count == 4
            ? [
                ("0.0.0.0", 8, "this network"), ("10.0.0.0", 8, "private"), ("100.64.0.0", 10, "shared, CGNAT"),
                ("127.0.0.0", 8, "loopback"), ("169.254.0.0", 16, "link-local"), ("172.16.0.0", 12, "private"),
                ("192.0.0.0", 24, "IETF protocol assignments"), ("192.0.2.0", 24, "documentation"),
                ("192.168.0.0", 16, "private"), ("198.18.0.0", 15, "benchmarking"),
                ("198.51.100.0", 24, "documentation"), ("203.0.113.0", 24, "documentation"),
                ("224.0.0.0", 4, "multicast"), ("240.0.0.0", 4, "reserved"),
            ]
            : [
                ("::", 128, "unspecified"), ("::1", 128, "loopback"), ("64:ff9b:1::", 48, "local NAT64"),
                ("100::", 64, "discard-only"), ("2001:db8::", 32, "documentation"), ("fc00::", 7, "unique local"),
                ("fe80::", 10, "link-local"), ("ff00::", 8, "multicast"),
            ]
        for (network, prefix, kind) in table where IPAddress(network)!.contains(self, prefix: prefix) {
            return kind
        }
        return nil
    }
}

/// When a failed webhook delivery is tried again: exponential back-off from `base`, doubling up to `cap`, with
/// jitter (a uniform draw between half the back-off and all of it, so that many deliveries failing at once do not
/// return at once), until `period` after the first attempt; then the delivery is given up.
public struct WebhookRetryPolicy: Sendable, Equatable {
    public var base: Duration
    public var cap: Duration
    public var period: Duration

    public init(base: Duration = .seconds(5), cap: Duration = .seconds(3600), period: Duration = .seconds(86_400)) {
        self.base = base
        self.cap = cap
        self.period = period
    }

    /// The next attempt after `failures` failed ones (1 after the first), the first made at `firstAttempt`; nil when
    /// the period is over. `random` gives a number in [0, 1).
    public func nextAttempt(
        after failures: Int, firstAttempt: Date, now: Date, random: () -> Double
    ) -> Date? {
        let exponent = min(max(failures - 1, 0), 40)
        let backoff = min(seconds(base) * pow(2, Double(exponent)), seconds(cap))
        let delay = backoff / 2 + random() * backoff / 2
        let next = now.addingTimeInterval(delay)
        guard next.timeIntervalSince(firstAttempt) <= seconds(period) else { return nil }
        return next
    }

    func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
