import AsyncHTTPClient
import Foundation
import ReelAPI
import ReelCSV
import ReelClient
import ReelCore
import ReelTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Two real `reel serve` nodes with CPU workers (scripted; the real engine under `make soak`) sharing one queue in a real PostgreSQL database (see
/// `TestPostgres`), checked through their HTTP APIs and their output directories.
@Suite(.serialized) struct ClusterTests {
    static func spec(_ prompt: String, seed: Int, steps: Int = 2) -> JobSubmission {
        JobSubmission(prompt: prompt, size: "32x32", frames: 5, steps: steps, seed: UInt64(seed))
    }

    /// Starts one node per name on the database at `url`, each with its own data directory.
    func startNodes(
        _ names: [String], database url: String, in directory: URL, extra: [String] = [],
        worker: TestSupport.Worker = .scripted
    ) async throws -> [ServerProcess] {
        var nodes: [ServerProcess] = []
        for name in names {
            // ServerProcess picks a random port, which another process may hold; then it picks again.
            for attempt in 1...3 {
                let node = try ServerProcess(
                    devices: "cpu", dataDirectory: directory.appendingPathComponent(name),
                    extraArguments: ["--node", name, "--database", url] + extra, worker: worker)
                do {
                    try await node.waitUntilReady()
                    nodes.append(node)
                    break
                } catch  where attempt < 3 && node.log.contains("Address already in use") {
                    node.stop()
                }
            }
        }
        return nodes
    }

    func eventKinds(_ id: String, on node: ServerProcess) async throws -> [String] {
        try await node.client.eventLog(id).map(\.kind)
    }

    /// Waits until every job has ended, asking `node`.
    func waitForEnd(_ ids: [String], on node: ServerProcess, timeout: Duration) async throws -> [String: JobResource] {
        let deadline = ContinuousClock.now + timeout
        var done: [String: JobResource] = [:]
        while ContinuousClock.now < deadline {
            for id in ids where done[id] == nil {
                let job = try await node.client.job(id)
                if job.state.isTerminal { done[id] = job }
            }
            if done.count == ids.count { return done }
            try await Task.sleep(for: .milliseconds(250))
        }
        throw ServerProcessError("jobs did not end in time: \(ids.filter { done[$0] == nil })")
    }

    func videos(of id: String, on node: ServerProcess) -> [String] {
        let directory = node.dataDirectory.appendingPathComponent("outputs/\(id)").path
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".mp4") }
    }

    @Test func aHundredJobsOnTwoNodesRunExactlyOnceAndEveryNodeServesEveryVideo() async throws {
        try await TestPostgres.withDatabase { url in
            try await TestSupport.withTemporaryDirectory { directory in
                let nodes = try await startNodes(
                    ["node-a", "node-b"], database: url, in: directory, worker: TestSupport.soakWorker)
                defer { nodes.forEach { $0.stop() } }
                let (a, b) = (nodes[0], nodes[1])

                // Half the jobs are submitted to each node; either may run any of them.
                let started = ContinuousClock.now
                var ids: [String] = []
                for index in 0..<100 {
                    let node = nodes[index % 2]
                    ids.append(try await node.client.submit(Self.spec("a lantern \(index)", seed: index)).id)
                }
                let finished = try await waitForEnd(ids, on: b, timeout: .seconds(240))
                print("100 jobs on two nodes took \(ContinuousClock.now - started)")

                var ranOn: [String: Int] = [:]
                for id in ids {
                    let job = try #require(finished[id])
                    #expect(job.state == .succeeded && job.attempts == 1, "\(id): \(job)")
                    let kinds = try await eventKinds(id, on: a)
                    #expect(kinds == ["queued", "started", "succeeded"], "\(id) ran more than once: \(kinds)")
                    // One video, in the output directory of the node the job says ran it, and none on the other.
                    let owner = try #require(job.node)
                    ranOn[owner, default: 0] += 1
                    let (mine, other) = owner == "node-a" ? (a, b) : (b, a)
                    #expect(videos(of: id, on: mine) == ["video.mp4"] && videos(of: id, on: other).isEmpty)
                }
                #expect(Set(ranOn.keys) == ["node-a", "node-b"], "both nodes took jobs: \(ranOn)")
                #expect(ranOn.values.allSatisfy { $0 >= 10 }, "the work was shared: \(ranOn)")

                // /v1/workers on either node lists both nodes' slots, neither stale.
                for node in nodes {
                    let seen = try await node.client.workers().filter { $0.stale == false }.compactMap(\.node)
                    #expect(seen.sorted() == ["node-a", "node-b"])
                }

                // A video node b made, asked of node a: a redirect to node b, which serves it.
                let fromB = try #require(ids.first { finished[$0]?.node == "node-b" })
                let http = HTTPClient(configuration: .init(redirectConfiguration: .disallow))
                let response = try? await http.execute(
                    HTTPClientRequest(url: "http://127.0.0.1:\(a.port)/v1/jobs/\(fromB)/video"), timeout: .seconds(30))
                try await http.shutdown()
                #expect(response?.status.code == 307)
                #expect(response?.headers["Location"].first == "http://127.0.0.1:\(b.port)/v1/jobs/\(fromB)/video")
                let video = directory.appendingPathComponent("redirected.mp4").path
                try await a.client.downloadVideo(fromB, to: video)
                let local = b.dataDirectory.appendingPathComponent("outputs/\(fromB)/video.mp4")
                #expect(try Data(contentsOf: URL(fileURLWithPath: video)) == Data(contentsOf: local))
            }
        }
    }

    /// The store publishes every change through PostgreSQL: a node's `/v1/events` shows the jobs the other node
    /// runs, live, with their progress.
    @Test func everyNodesEventStreamShowsTheOtherNodesJobs() async throws {
        try await TestPostgres.withDatabase { url in
            try await TestSupport.withTemporaryDirectory { directory in
                let nodes = try await startNodes(["node-a", "node-b"], database: url, in: directory)
                defer { nodes.forEach { $0.stop() } }
                let seen = SeenEvents()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for index in 0..<2 {
                        group.addTask {
                            // The stream says `: connected` as a comment the parser skips; the first ping or event
                            // comes later, so subscription is confirmed by a probe job below instead.
                            for try await message in nodes[index].client.events() {
                                guard let event = message.update else { continue }
                                seen.events.withLock { $0[index].append(event) }
                            }
                        }
                    }
                    // Both streams are open once each has seen a probe job queued on node a.
                    let probe = try await nodes[0].client.submit(Self.spec("a probe", seed: 99)).id
                    let deadline = ContinuousClock.now + .seconds(30)
                    while seen.events.withLock({ $0.contains(where: \.isEmpty) }), ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    var ids = [probe]
                    for index in 0..<5 {
                        ids.append(
                            try await nodes[index % 2].client.submit(Self.spec("a heron \(index)", seed: index)).id)
                    }
                    let finished = try await waitForEnd(ids, on: nodes[1], timeout: .seconds(120))
                    // The last events may still be on their way through NOTIFY.
                    let settled = ContinuousClock.now + .seconds(10)
                    func complete(_ index: Int) -> Bool {
                        let kinds = seen.events.withLock { Set($0[index].filter { $0.kind == .succeeded }.map(\.job)) }
                        return ids.allSatisfy(kinds.contains)
                    }
                    while !(complete(0) && complete(1)), ContinuousClock.now < settled {
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    group.cancelAll()
                    for id in ids {
                        let job = try #require(finished[id])
                        #expect(job.state == .succeeded, "\(id): \(job)")
                        // The node that did not run the job saw it start, progress and succeed.
                        let other = job.node == "node-a" ? 1 : 0
                        let kinds = seen.events.withLock { $0[other].filter { $0.job == id }.map(\.kind.rawValue) }
                        #expect(kinds.first == "queued" || id == probe, "\(id) on node \(other): \(kinds)")
                        #expect(kinds.contains("started") && kinds.contains("progress"), "\(id): \(kinds)")
                        #expect(kinds.last == "succeeded", "\(id) on node \(other): \(kinds)")
                    }
                }
            }
        }
    }

    /// Batch manifests live in the shared store: a batch submitted to node a is read, with its report, from node b;
    /// and the manifest file an older version left in node b's data directory is imported when b starts, for a to
    /// read.
    @Test func aBatchSubmittedToOneNodeIsReportedByTheOther() async throws {
        try await TestPostgres.withDatabase { url in
            try await TestSupport.withTemporaryDirectory { directory in
                let legacy = directory.appendingPathComponent("node-b/batches")
                try FileManager.default.createDirectory(at: legacy, withIntermediateDirectories: true)
                try #"""
                {"id":"batch_legacy","created_at":1750000000,"source":"csv","accepted":[],"rejected":[{"row":2,"column":"prompt","message":"the prompt is empty"}]}
                """#.write(to: legacy.appendingPathComponent("batch_legacy.json"), atomically: true, encoding: .utf8)
                let nodes = try await startNodes(["node-a", "node-b"], database: url, in: directory)
                defer { nodes.forEach { $0.stop() } }
                let (a, b) = (nodes[0], nodes[1])

                let csv =
                    "prompt,size,frames,steps,seed\r\na kite,32x32,5,2,1\r\nbad,33x32,5,2,2\r\na boat,32x32,5,2,3\r\n"
                let submission = try await a.client.submitBatch(csv: csv)
                let id = try #require(submission.id)
                #expect(submission.accepted.map(\.row) == [2, 4] && submission.rejected.map(\.row) == [3])

                // Node b knows the batch at once, and follows its jobs, wherever they run, to the end.
                var status = try await b.client.batch(id)
                #expect(status.total == 3 && status.jobs.map(\.id) == submission.accepted.map(\.job))
                let deadline = ContinuousClock.now + .seconds(120)
                while !status.done, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(250))
                    status = try await b.client.batch(id)
                }
                #expect(status.done && status.counts["succeeded"] == 2, "\(status)")
                let report = try await b.client.batchReport(id)
                let rows = try CSVReader.parse(report).rows
                #expect(rows.map { $0.fields[0] } == ["2", "3", "4"])
                #expect(rows.map { $0.fields[2] } == ["succeeded", "rejected", "succeeded"])
                #expect(rows[0].fields[1] == submission.accepted[0].job && rows[1].fields[9].hasPrefix("size: "))
                #expect(try await a.client.batchReport(id) == report)

                // The batch node b had kept as a file is in the store now, and node a reports it.
                let old = try await a.client.batch("batch_legacy")
                #expect(old.total == 1 && old.jobs.isEmpty && old.done)
                #expect(try await a.client.batchReport("batch_legacy").contains("2,,rejected,"))
            }
        }
    }

    /// An image uploaded to one node, for a job another node runs: the job store keeps the image, and the node that
    /// claims the job copies it into its own `<data-dir>/images/` before its worker reads it.
    @Test func aJobRunsOnANodeItsImageWasNotUploadedTo() async throws {
        try await TestPostgres.withDatabase { url in
            try await TestSupport.withTemporaryDirectory { directory in
                // Node a alone, its one slot kept busy by a slow job (0.4 s a step), so that node b, started later,
                // is the one that runs the job with the image.
                let a = try #require(try await startNodes(["node-a"], database: url, in: directory).first)
                defer { a.stop() }
                let busy = try await a.client.submit(Self.spec("a slow tide [slow]", seed: 1, steps: 200))
                let deadline = ContinuousClock.now + .seconds(60)
                while try await a.client.job(busy.id).state != .running, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(try await a.client.job(busy.id).state == .running)

                let http = HTTPClient(configuration: .init())
                var upload = HTTPClientRequest(url: "http://127.0.0.1:\(a.port)/v1/images")
                upload.method = .POST
                upload.headers.add(name: "Content-Type", value: "image/png")
                upload.body = .bytes(ImageFixtures.png3x2)
                let response = try await http.execute(upload, timeout: .seconds(30))
                let answer = try await response.body.collect(upTo: 1 << 20)
                try await http.shutdown()
                #expect(response.status.code == 201)
                let image = try JSONSerialization.jsonObject(with: Data(answer.readableBytesView)) as? [String: Any]
                let id = try #require(image?["id"] as? String)
                let sha256 = String(id.dropFirst("img_".count))
                let file = "images/\(sha256.prefix(2))/\(sha256).png"
                #expect(FileManager.default.fileExists(atPath: a.dataDirectory.appendingPathComponent(file).path))

                var submission = Self.spec("a lamp turning", seed: 2)
                submission.image = id
                let job = try await a.client.submit(submission)
                // Node b's data directory is new: no image in it but what it copies.
                #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("node-b").path))
                let b = try #require(try await startNodes(["node-b"], database: url, in: directory).first)
                defer { b.stop() }

                let done = try #require(try await waitForEnd([job.id], on: b, timeout: .seconds(120))[job.id])
                #expect(done.state == .succeeded && done.node == "node-b", "\(done)")
                let metadata = try JSONSerialization.jsonObject(
                    with: Data(contentsOf: b.dataDirectory.appendingPathComponent("outputs/\(job.id)/job.json")))
                #expect(((metadata as? [String: Any])?["image"] as? [String: Any])?["sha256"] as? String == sha256)
                #expect(
                    FileManager.default.contents(atPath: b.dataDirectory.appendingPathComponent(file).path)
                        == Data(ImageFixtures.png3x2))
                #expect(try await a.client.job(busy.id).state == .running, "node a was busy all along")
                _ = try await a.client.cancel(busy.id)
            }
        }
    }

    @Test func jobsOfANodeKilledMidRunFinishOnTheOtherOnceTheirLeasesExpire() async throws {
        try await TestPostgres.withDatabase { url in
            try await TestSupport.withTemporaryDirectory { directory in
                // Short leases so that the test waits seconds, not a minute.
                let nodes = try await startNodes(
                    ["node-a", "node-b"], database: url, in: directory, extra: ["--lease-seconds", "3"])
                defer { nodes.forEach { $0.stop() } }
                let (a, b) = (nodes[0], nodes[1])
                var ids: [String] = []
                for index in 0..<6 {
                    ids.append(try await a.client.submit(Self.spec("a slow tide [slow]", seed: index, steps: 6)).id)
                }
                // Wait until node a is running one of them, then kill -9 it.
                var victim: String?
                let deadline = ContinuousClock.now + .seconds(60)
                while victim == nil, ContinuousClock.now < deadline {
                    for id in ids {
                        let job = try await b.client.job(id)
                        if job.state == .running && job.node == "node-a" { victim = id }
                    }
                    try await Task.sleep(for: .milliseconds(100))
                }
                let killed = try #require(victim, "node a never ran a job")
                a.signal(SIGKILL)
                let killedAt = ContinuousClock.now
                _ = try await a.waitForExit()

                let finished = try await waitForEnd(ids, on: b, timeout: .seconds(120))
                for id in ids {
                    #expect(finished[id]?.state == .succeeded, "\(id): \(String(describing: finished[id]))")
                }
                let job = try #require(finished[killed])
                #expect(job.node == "node-b" && job.attempts == 2)
                #expect(videos(of: killed, on: b) == ["video.mp4"])
                let events = try await b.client.eventLog(killed)
                #expect(events.map(\.kind) == ["queued", "started", "requeued", "started", "succeeded"])
                #expect(events[2].message?.contains("lease of node-a/cpu expired") == true, "\(events[2])")

                // Node a's slots are still listed, as stale, once its heartbeat is old.
                let staleBy = killedAt + .seconds(11)
                if ContinuousClock.now < staleBy { try await Task.sleep(until: staleBy) }
                let staleNodes = try await b.client.workers().filter { $0.stale == true }.compactMap(\.node)
                #expect(staleNodes == ["node-a"])
            }
        }
    }
}

/// What each node's event stream delivered, by node index.
final class SeenEvents: Sendable {
    let events = Mutex<[[JobUpdate]]>([[], []])
}
