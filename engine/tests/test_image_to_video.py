"""Image-to-video end to end: `python -m reel_engine.worker --model tiny:i2v-a14b --device cpu` renders a request with a
first and a last frame into a decodable MP4 and records both images in job.json; the scripted worker takes the same
fields with the same checks (SHA-256, decoding, what the model takes) and records them the same way."""

import json
import os

import pytest
from conftest import SCRIPTED_WORKER, EarlyStart, decode_video, generate_request, write_image

I2V_WORKER = EarlyStart("i2v-real", 1, ("--device", "cpu", "--model", "tiny:i2v-a14b"))
EARLY_WORKERS = [I2V_WORKER]  # started when the session begins (conftest.py)


@pytest.fixture(scope="module")
def real_i2v(early_workers):
    (worker,) = early_workers.take(I2V_WORKER)
    yield worker
    worker.kill()


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("pictures")
    return {"first": write_image(folder / "first.png", 120, 64, seed=1),
            "last": write_image(folder / "last.jpg", 64, 96, seed=2, format="JPEG", quality=90)}


def i2v_request(job, out_dir, pictures, **overrides) -> dict:
    fields = dict(width=64, height=48, frames=5, steps=2, guidance=4.0, guidance_2=3.0, image=pictures["first"],
                  last_image=pictures["last"])
    return generate_request(job, str(out_dir), **{**fields, **overrides})


def job_json(out_dir) -> dict:
    with open(os.path.join(out_dir, "job.json"), encoding="utf-8") as f:
        return json.load(f)


def check_result(final, out_dir, pictures) -> dict:
    assert final["event"] == "result", final
    info, frames = decode_video(final["outputs"]["video"])
    assert (info["codec"], info["rate"]) == ("h264", 16) and frames.shape == (5, 48, 64, 3)
    record = job_json(out_dir)
    assert record["image"] == {"sha256": pictures["first"]["sha256"], "width": 120, "height": 64, "fit": "cover"}
    assert record["last_image"] == {"sha256": pictures["last"]["sha256"], "width": 64, "height": 96, "fit": "cover"}
    assert (record["architecture"], record["guidance"], record["guidance_2"]) == ("i2v-a14b", 4.0, 3.0)
    return record


def test_the_real_worker_renders_a_first_last_frame_request(real_i2v, pictures, tmp_path):
    ready = real_i2v.ready()
    assert ready["event"] == "ready", real_i2v.log()
    assert (ready["model"], ready["architecture"], ready["fps"], ready["spatial_stride"]) == (
        "tiny:i2v-a14b", "i2v-a14b", 16, 16)
    assert (ready["image"], ready["last_image"]) == ("required", True)
    out = tmp_path / "v-1"
    real_i2v.send(i2v_request("v-1", out, pictures))
    final, seen = real_i2v.wait_final("v-1")
    check_result(final, out, pictures)
    assert [(e["stage"], e["step"]) for e in seen if e["event"] == "progress"][:6] == [
        ("text_encoding", 0), ("text_encoding", 1), ("image_encoding", 0), ("image_encoding", 1), ("denoising", 1),
        ("denoising", 2)]
    # Without its image the request is refused at once, naming the field.
    real_i2v.send(generate_request("v-2", str(tmp_path / "v-2"), width=64, height=48, frames=5))
    final, _ = real_i2v.wait_final("v-2")
    assert final == {"event": "error", "job": "v-2", "code": "bad_request",
                     "message": "image: missing field: i2v-a14b models need a first-frame image"}


def test_the_scripted_worker_takes_the_same_fields(start_worker, pictures, tmp_path):
    w = start_worker("--device", "cpu", "--model", "tiny:i2v-a14b", module=SCRIPTED_WORKER)
    ready = w.ready()
    assert ready["event"] == "ready" and (ready["image"], ready["last_image"]) == ("required", True), w.log()
    out = tmp_path / "s-1"
    w.send(i2v_request("s-1", out, pictures))
    record = check_result(w.wait_final("s-1")[0], out, pictures)
    assert record["scripted"] is True
    # Another last frame, another video.
    other = write_image(tmp_path / "other.png", 64, 48, seed=3)
    w.send(i2v_request("s-2", tmp_path / "s-2", pictures, last_image=other))
    assert w.wait_final("s-2")[0]["event"] == "result"
    assert (decode_video(out / "video.mp4")[1] != decode_video(tmp_path / "s-2" / "video.mp4")[1]).any()

    cut = tmp_path / "cut.png"
    cut.write_bytes(open(pictures["first"]["path"], "rb").read()[:200])
    for job, overrides, message in (
        ("s-3", {"image": {**pictures["first"], "sha256": "1" * 64}},
         f"image: the SHA-256 of {pictures['first']['path']} is {pictures['first']['sha256']}, not the request's "
         f"{'1' * 64}"),
        ("s-4", {"last_image": {"path": str(cut), "sha256": write_sha(cut)}},
         f"last_image: {cut} is not a decodable PNG, JPEG or WebP image"),
        ("s-5", {"image": None}, "image: missing field: i2v-a14b models need a first-frame image"),
    ):
        w.send(i2v_request(job, tmp_path / job, pictures, **overrides))
        final, seen = w.wait_final(job)
        assert (final["event"], final["code"], seen) == ("error", "bad_request", []), final
        assert final["message"].startswith(message), final
        assert not os.path.exists(tmp_path / job)


def test_a_text_only_model_refuses_an_image_naming_the_models_that_take_one(start_worker, pictures, tmp_path):
    w = start_worker("--device", "cpu", "--model", "tiny:t2v-a14b", module=SCRIPTED_WORKER)
    assert (w.ready()["image"], w.ready()["last_image"]) == ("none", False)
    w.send(generate_request("t-1", str(tmp_path / "t-1"), width=64, height=48, image=pictures["first"]))
    final, _ = w.wait_final("t-1")
    assert (final["code"], final["job"]) == ("bad_request", "t-1")
    assert final["message"].startswith("image: t2v-a14b models take no image; ti2v-5b and i2v-a14b models take one "
                                       "(tiny:ti2v-5b, tiny:i2v-a14b, random:ti2v-5b, random:i2v-a14b")


def write_sha(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
