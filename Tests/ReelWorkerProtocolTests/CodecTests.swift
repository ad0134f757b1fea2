import Foundation
import Testing

@testable import ReelWorkerProtocol

@Suite struct CodecTests {
    let codec = WorkerCodec()

    static let requests: [WorkerRequest] = [
        .generate(
            .init(
                job: "j-1", prompt: "一只狐狸\n在雪地里", negativePrompt: "blurry", width: 256, height: 128, frames: 17,
                steps: 4, guidance: 5.0, guidance2: 3.0, seed: UInt64(Int64.max), pngFrames: true,
                outDir: "/tmp/out/j-1",
                fps: 24, memorySaving: true, interpolate: 2, checkpointEvery: 5,
                metadata: ["style": .string("cinematic"), "row": .number(2)],
                debug: ["step_delay": .number(0.5)],
                image: .init(path: "/data/images/ab/ab12.png", sha256: "ab12"),
                lastImage: .init(path: "/data/images/cd/cd34.webp", sha256: "cd34"), fit: "contain")),
        .generate(
            .init(
                job: "j-2", prompt: "p", negativePrompt: "", width: 32, height: 32, frames: 1, steps: 1, guidance: 1,
                seed: 0, pngFrames: false, outDir: "/o")),
        .prepare(.init(prompt: "一只狐狸\n在雪地里", negativePrompt: "blurry")),
        .cancel(job: "j-1"),
        .ping,
        .shutdown,
    ]

    static let events: [WorkerEvent] = [
        .ready(
            .init(
                protocol: 1, device: "cuda:0", model: "random:ti2v-5b", architecture: "ti2v-5b", dtype: "bfloat16",
                freeMemoryBytes: 140_000_000_000, totalMemoryBytes: 150_000_000_000, fps: 24, spatialStride: 32,
                temporalStride: 4, engineVersion: "0.1.0", pid: 42, randomWeights: true, loadSeconds: 3.5,
                defaults: .object(["width": .number(1280)]))),
        .progress(.init(job: "j-1", stage: .denoising, step: 3, total: 4)),
        .result(
            .init(
                job: "j-1",
                outputs: .init(
                    dir: "/o/j-1", video: "/o/j-1/video.mp4", metadata: "/o/j-1/job.json", framesDir: "/o/j-1/frames",
                    frameCount: 17, width: 256, height: 256, fps: 24),
                seconds: .init(textEncoding: 0.1, denoising: 1.5, vaeDecode: 0.2, encoding: 0.3, total: 2.1),
                peakMemoryBytes: 1 << 30)),
        .error(.init(job: "j-1", code: .outOfMemory, message: "CUDA out of memory")),
        .error(.init(job: nil, code: .badRequest, message: "not JSON")),
        .resumed(.init(job: "j-1", step: 3, total: 8)),
        .checkpointRejected(.init(job: "j-1", reason: "the checkpoint is truncated")),
        .pong,
    ]

    @Test(arguments: requests)
    func requestsRoundTrip(_ request: WorkerRequest) throws {
        let line = try codec.encodeLine(request)
        #expect(line.last == 0x0A)
        #expect(!line.dropLast().contains(0x0A), "a request is exactly one line")
        #expect(try codec.decodeRequest(String(decoding: line.dropLast(), as: UTF8.self)) == request)
    }

    @Test(arguments: events)
    func eventsRoundTrip(_ event: WorkerEvent) throws {
        let line = try codec.encodeEventLine(event)
        #expect(try codec.decodeEvent(String(decoding: line.dropLast(), as: UTF8.self)) == event)
    }

    @Test func wireNamesAreSnakeCase() throws {
        let line = String(decoding: try codec.encodeLine(Self.requests[0]), as: UTF8.self)
        for key in [
            "\"type\":\"generate\"", "\"negative_prompt\"", "\"png_frames\":true", "\"out_dir\"", "\"guidance_2\"",
            "\"memory_saving\"", #""image":{"path":"/data/images/ab/ab12.png","sha256":"ab12"}"#,
            #""last_image":{"#, #""fit":"contain""#,
        ] {
            #expect(line.contains(key), "\(key) in \(line)")
        }
    }

    @Test func prepareIsTheDocumentedLine() throws {
        let line = try codec.encodeLine(.prepare(.init(prompt: "a fox", negativePrompt: "blurry")))
        #expect(
            String(decoding: line, as: UTF8.self) == #"{"negative_prompt":"blurry","prompt":"a fox","type":"prepare"}"#
                + "\n")
    }

    @Test func decodesWhatTheEngineWrites() throws {
        let ready = try codec.decodeEvent(
            #"{"event":"ready","protocol":1,"device":"cpu","model":"tiny","architecture":"ti2v-5b","dtype":"float32","#
                + #""free_memory_bytes":1,"total_memory_bytes":2,"fps":24,"spatial_stride":32,"temporal_stride":4,"#
                + #""engine_version":"0.1.0","pid":9,"random_weights":true,"load_seconds":0.5,"extra":"ignored"}"#)
        guard case .ready(let value) = ready else { Issue.record("not ready: \(ready)"); return }
        #expect(value.spatialStride == 32 && value.randomWeights == true)

        #expect(try codec.decodeEvent(#"{"event":"heartbeat2","x":1}"#) == .unknown("heartbeat2"))
        #expect(throws: (any Error).self) { try codec.decodeEvent("not json") }
        #expect(throws: (any Error).self) { try codec.decodeEvent(#"{"event":"progress","job":"j"}"#) }
        #expect(throws: (any Error).self) { try codec.decodeRequest(#"{"type":"explode"}"#) }
    }

    @Test func lineSplitterHandlesPartialAndMultipleLines() {
        var splitter = LineSplitter()
        #expect(splitter.feed(Array("{\"a\":".utf8)).isEmpty)
        #expect(splitter.feed(Array("1}\n{\"b\":2}\n{\"c\"".utf8)) == ["{\"a\":1}", "{\"b\":2}"])
        #expect(splitter.feed(Array(":3}\r\n".utf8)) == ["{\"c\":3}\r"])
        #expect(splitter.finish() == nil)
        #expect(splitter.feed(Array("tail".utf8)).isEmpty)
        #expect(splitter.finish() == "tail")
    }
}

extension WorkerRequest: CustomTestStringConvertible {
    public var testDescription: String { String(describing: self).prefix(60).description }
}

extension WorkerEvent: CustomTestStringConvertible {
    public var testDescription: String { String(describing: self).prefix(60).description }
}
