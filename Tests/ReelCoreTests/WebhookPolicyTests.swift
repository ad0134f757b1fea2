import Foundation
import Testing

@testable import ReelCore

/// Where webhooks may go, and when a failed one is tried again: pure values, no network.
struct WebhookPolicyTests {
    func refused(_ url: String, _ policy: WebhookDestinationPolicy = .init()) -> String? {
        do {
            _ = try policy.check(url: url)
            return nil
        } catch {
            return error.message
        }
    }

    @Test func privateLoopbackAndLinkLocalAddressesAreRefusedUnlessAllowed() throws {
        for url in [
            "http://127.0.0.1/hook", "http://10.1.2.3/", "http://172.16.0.9/", "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data", "http://100.64.0.1/", "http://0.0.0.0/", "http://[::1]/",
            "http://[fe80::1]/", "http://[fd00::5]/", "http://[::ffff:127.0.0.1]/", "http://224.0.0.1/",
        ] {
            #expect(refused(url)?.contains("webhook_url") == true, "\(url) was accepted")
        }
        #expect(refused("http://169.254.169.254/")?.contains("link-local") == true)
        #expect(refused("https://93.184.215.14/hook") == nil, "a public address")
        #expect(refused("https://hooks.example.com/reel") == nil, "a public name, its addresses checked at connect")
        let allowed = WebhookDestinationPolicy(allow: try WebhookDestinationPolicy.parse("10.0.0.0/8, ::1"))
        #expect(refused("http://10.9.8.7/", allowed) == nil)
        #expect(refused("http://[::1]:9000/", allowed) == nil)
        #expect(refused("http://127.0.0.1/", allowed) != nil, "only what is listed")
    }

    @Test func anAllowListOfHostsNamesTheOnlyDestinations() throws {
        let policy = WebhookDestinationPolicy(
            allow: try WebhookDestinationPolicy.parse("hooks.example.com,*.studio.test"))
        #expect(refused("https://hooks.example.com/x", policy) == nil)
        #expect(refused("https://a.b.studio.test/x", policy) == nil)
        #expect(refused("https://studio.test/x", policy)?.contains("--webhook-allow") == true)
        #expect(refused("https://evil.example.com/x", policy)?.contains("--webhook-allow") == true)
        // A public address written as one is no way around a list of names, in either family.
        #expect(refused("https://93.184.215.14/x", policy)?.contains("--webhook-allow") == true)
        #expect(refused("https://[2606:4700::1111]/x", policy)?.contains("--webhook-allow") == true)
        // A listed name that resolves to a private address is still refused at connect time.
        #expect(throws: ReelError.self) {
            try policy.check(address: IPAddress("192.168.0.2")!, host: "hooks.example.com")
        }
        #expect(throws: ReelError.self) { try WebhookDestinationPolicy.parse("10.0.0.0/33") }
        #expect(throws: ReelError.self) { try WebhookDestinationPolicy.parse("bad host!") }
    }

    @Test func onlyHTTPURLsWithoutCredentials() {
        #expect(refused("ftp://hooks.example.com/")?.contains("http or https") == true)
        #expect(refused("not a url")?.contains("http or https") == true)
        #expect(refused("https://user:pw@hooks.example.com/")?.contains("password") == true)
        #expect(refused("https://" + String(repeating: "a", count: 3000) + ".com/") != nil)
    }

    @Test func addresses() {
        #expect(IPAddress("2001:db8::1")?.bytes == [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [1])
        #expect(IPAddress("::ffff:10.0.0.1")?.specialUse == "private")
        #expect(IPAddress("01.2.3.4") == nil && IPAddress("1.2.3") == nil && IPAddress("1:2:3:4:5:6:7:8:9") == nil)
        #expect(IPAddress("8.8.8.8")?.specialUse == nil && IPAddress("2606:4700::1111")?.specialUse == nil)
    }

    @Test func retriesBackOffWithJitterAndStopAfterThePeriod() {
        let policy = WebhookRetryPolicy(base: .seconds(5), cap: .seconds(3600), period: .seconds(86_400))
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        // The back-off doubles: 5, 10, 20, … s, each drawn between half and all of it.
        for (failures, backoff) in [(1, 5.0), (2, 10.0), (3, 20.0), (10, 2560.0), (11, 3600.0), (30, 3600.0)] {
            let low = policy.nextAttempt(after: failures, firstAttempt: t0, now: t0, random: { 0 })!
            let high = policy.nextAttempt(after: failures, firstAttempt: t0, now: t0, random: { 0.999_999 })!
            #expect(abs(low.timeIntervalSince(t0) - backoff / 2) < 1e-6)
            #expect(abs(high.timeIntervalSince(t0) - backoff) < 0.01)
        }
        // A receiver down for ten minutes is tried within that time and again after it.
        var now = t0
        var failures = 0
        var tries: [Double] = []
        while now.timeIntervalSince(t0) < 900 {
            failures += 1
            now = policy.nextAttempt(after: failures, firstAttempt: t0, now: now, random: { 0.5 })!
            tries.append(now.timeIntervalSince(t0))
        }
        #expect(tries.filter { $0 > 600 }.count >= 1 && tries.count >= 6, "\(tries)")
        // Past the period: given up.
        #expect(
            policy.nextAttempt(after: 5, firstAttempt: t0, now: t0.addingTimeInterval(86_399), random: { 0.5 }) == nil)
    }
}
