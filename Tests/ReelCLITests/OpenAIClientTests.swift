import Foundation
import ReelTestSupport
import Testing

/// The official openai Python package, unchanged, as a client of a live `reel serve` with API keys and a tiny CPU
/// worker: what a content platform that already speaks OpenAI's videos API would do.
@Suite(.serialized) struct OpenAIClientTests {
    static let key = "reel-sdk-test-key-alpha-0123456789"
    static let otherKey = "reel-sdk-test-key-bravo-0123456789"

    static let script = #"""
        import json, sys, time, urllib.request
        import openai

        port, key, other_key, out = sys.argv[1:5]
        base = f"http://127.0.0.1:{port}/v1"

        # /readyz needs a key like every route but /healthz.
        deadline = time.time() + 120
        while True:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/readyz", headers={"Authorization": f"Bearer {key}"})
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        break
            except Exception:
                pass
            if time.time() > deadline:
                sys.exit("the server never became ready")
            time.sleep(0.2)

        client = openai.OpenAI(base_url=base, api_key=key, max_retries=0)
        video = client.videos.create(
            prompt="a red kite over a beach", model="sora-2", seconds="0.2", size="64x64",
            extra_body={"seed": 7, "steps": 2, "loras": [{"name": "tiny_detail", "scale": 0.5}]})
        assert video.object == "video" and video.status in ("queued", "in_progress"), video
        assert video.model == "tiny" and video.size == "64x64" and video.seconds == "0.2", video
        created = video.id
        deadline = time.time() + 120
        while video.status in ("queued", "in_progress"):
            assert 0 <= video.progress <= 100, video
            if time.time() > deadline:
                sys.exit(f"the video never finished: {video}")
            time.sleep(0.2)
            video = client.videos.retrieve(created)
        assert video.status == "completed", video
        assert video.progress == 100 and video.completed_at >= video.created_at and video.error is None, video

        # Image-to-video as the SDK sends it: input_reference is a file part of the multipart body, and Reel's own
        # fields (extra_body) come along as form fields.
        import hashlib
        from PIL import Image
        Image.new("RGB", (96, 64), (200, 40, 40)).save(out + "/photo.png")
        with open(out + "/photo.png", "rb") as photo:
            pictured = client.videos.create(
                prompt="a red lamp", model="sora-2", seconds="0.2", size="64x64", input_reference=photo,
                extra_body={"seed": 3, "steps": 2, "fit": "contain", "loras": "tiny_detail:0.25"})
        deadline = time.time() + 120
        while pictured.status in ("queued", "in_progress"):
            if time.time() > deadline:
                sys.exit(f"the image-to-video job never finished: {pictured}")
            time.sleep(0.2)
            pictured = client.videos.retrieve(pictured.id)
        assert pictured.status == "completed", pictured
        request = urllib.request.Request(
            f"{base}/jobs/{pictured.id}", headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            spec = json.load(response)["spec"]
        with open(out + "/photo.png", "rb") as photo:
            digest = hashlib.sha256(photo.read()).hexdigest()
        assert spec["image"] == "img_" + digest and spec["fit"] == "contain", spec
        # Reel's LoRAs as extra fields: a list in the JSON body, the CSV column's text form as a form field.
        assert [(l["name"], l["scale"]) for l in spec["loras"]] == [("tiny_detail", 0.25)], spec
        request = urllib.request.Request(f"{base}/jobs/{created}", headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            first = json.load(response)["spec"]
        assert [(l["name"], l["scale"], l["expert"]) for l in first["loras"]] == [("tiny_detail", 0.5, "both")], first
        client.videos.download_content(pictured.id).write_to_file(out + "/pictured.mp4")
        client.videos.delete(pictured.id)

        listed = client.videos.list(limit=10, order="desc")
        assert [v.id for v in listed.data] == [created], listed
        assert listed.has_more is False

        client.videos.download_content(created).write_to_file(out + "/video.mp4")
        client.videos.download_content(created, variant="video").write_to_file(out + "/video-again.mp4")
        client.videos.download_content(created, variant="thumbnail").write_to_file(out + "/thumbnail.jpg")

        errors = {}
        other = openai.OpenAI(base_url=base, api_key=other_key, max_retries=0)
        try:
            other.videos.retrieve(created)
            sys.exit("another tenant retrieved the video")
        except openai.NotFoundError as error:
            errors["other_tenant"] = error.code
        assert list(other.videos.list().data) == []

        wrong = openai.OpenAI(base_url=base, api_key="not-a-key-of-this-server-0123", max_retries=0)
        try:
            wrong.videos.list()
            sys.exit("a wrong key was accepted")
        except openai.AuthenticationError as error:
            errors["wrong_key"] = error.code
        try:
            client.videos.create(prompt="a kite", size="1280x720")
            sys.exit("an invalid size was accepted")
        except openai.BadRequestError as error:
            errors["size"] = error.param

        deleted = client.videos.delete(created)
        assert deleted.id == created and deleted.deleted is True and deleted.object == "video.deleted", deleted
        try:
            client.videos.retrieve(created)
            sys.exit("a deleted video was retrieved")
        except openai.NotFoundError:
            pass
        print(json.dumps({"id": created, "errors": errors}))
        """#

    @Test func theOfficialSDKCreatesPollsListsDownloadsAndDeletes() async throws {
        try await TestSupport.withTemporaryDirectory { directory in
            let keyFile = directory.appendingPathComponent("keys.txt")
            try "# tenants of this test\n\(Self.key)\n\n\(Self.otherKey)\n".write(
                to: keyFile, atomically: true, encoding: .utf8)
            let server = try ServerProcess(
                devices: "cpu", dataDirectory: directory.appendingPathComponent("server"),
                extraArguments: ["--api-key-file", keyFile.path], worker: .real)
            defer { server.stop() }
            try LoRAFixtures.write(
                LoRAFixtures.pairs(.tiny, rank: 4, layout: .comfy), name: "tiny_detail",
                in: directory.appendingPathComponent("server/loras"))
            let scriptFile = directory.appendingPathComponent("sdk.py")
            try Self.script.write(to: scriptFile, atomically: true, encoding: .utf8)

            let run = try Self.python([scriptFile.path, String(server.port), Self.key, Self.otherKey, directory.path])
            #expect(run.status == 0, "\(run.stderr.suffix(3000))\n--- server:\n\(server.log.suffix(3000))")
            let result = try #require(
                try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], "\(run.stdout)")
            let errors = try #require(result["errors"] as? [String: Any])
            #expect(errors["other_tenant"] as? String == "not_found")
            #expect(errors["wrong_key"] as? String == "invalid_api_key")
            #expect(errors["size"] as? String == "size")

            let probe = try TestSupport.probeVideo(directory.appendingPathComponent("video.mp4").path)
            #expect(probe.frames == 5 && probe.width == 64 && probe.height == 64 && probe.codec == "h264")
            let pictured = try TestSupport.probeVideo(directory.appendingPathComponent("pictured.mp4").path)
            #expect(pictured.frames == 5 && pictured.width == 64 && pictured.height == 64)
            let again = try Data(contentsOf: directory.appendingPathComponent("video-again.mp4"))
            #expect(again == (try Data(contentsOf: directory.appendingPathComponent("video.mp4"))))
            let thumbnail = try Data(contentsOf: directory.appendingPathComponent("thumbnail.jpg"))
            #expect(thumbnail.starts(with: [0xFF, 0xD8, 0xFF]), "a JPEG")
            // The video's first frame, decoded: 64×64.
            let size = try TestSupport.runCapturing(
                TestSupport.engine.python,
                [
                    "-c", "import sys; from PIL import Image; print(Image.open(sys.argv[1]).size)",
                    directory.appendingPathComponent("thumbnail.jpg").path,
                ])
            #expect(size.trimmingCharacters(in: .whitespacesAndNewlines) == "(64, 64)")
            // Deleting the video removed its files.
            let outputs = directory.appendingPathComponent("server/outputs/\(try #require(result["id"] as? String))")
            #expect(!FileManager.default.fileExists(atPath: outputs.path))
        }
    }

    @Test func serveRefusesAnOpenNonLoopbackAddress() throws {
        try TestSupport.withTemporaryDirectorySync { directory in
            let open = try TestSupport.runReel(
                ["serve", "--host", "0.0.0.0", "--port", "1", "--data-dir", directory.path], in: directory,
                environment: ["REEL_API_KEYS": ""])
            #expect(open.status != 0)
            #expect(open.stderr.contains("refusing to listen on 0.0.0.0 without API keys"), "\(open.stderr)")

            let weak = directory.appendingPathComponent("weak.txt")
            try "short\n".write(to: weak, atomically: true, encoding: .utf8)
            let short = try TestSupport.runReel(
                ["serve", "--api-key-file", weak.path, "--port", "1", "--data-dir", directory.path], in: directory)
            #expect(short.status != 0)
            #expect(short.stderr.contains("at least 16"), "\(short.stderr)")

            let empty = directory.appendingPathComponent("empty.txt")
            try "# no keys yet\n\n".write(to: empty, atomically: true, encoding: .utf8)
            let none = try TestSupport.runReel(
                ["serve", "--api-key-file", empty.path, "--port", "1", "--data-dir", directory.path], in: directory)
            #expect(none.status != 0)
            #expect(none.stderr.contains("holds no keys"), "\(none.stderr)")
        }
    }

    /// Runs the engine's Python with `arguments`, capturing both streams.
    static func python(_ arguments: [String]) throws -> TestSupport.Run {
        try TestSupport.run(TestSupport.engine.python, arguments)
    }
}
