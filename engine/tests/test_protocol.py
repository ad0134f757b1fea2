"""Request parsing and validation: every rejected request names its field; the worker's codec is pure Python."""

import json
import math

import pytest

from reel_engine import protocol
from reel_engine.protocol import Limits, RequestError, parse_request

TI2V = Limits(spatial_stride=32, temporal_stride=4)
FAULTS = Limits(spatial_stride=32, temporal_stride=4, allow_faults=True)


def generate(**overrides):
    request = {"type": "generate", "job": "j-1", "prompt": "a red fox in snow", "negative_prompt": "",
               "width": 256, "height": 256, "frames": 17, "steps": 4, "guidance": 5.0, "seed": 42,
               "out_dir": "/tmp/out/j-1"}
    request.update(overrides)
    return {k: v for k, v in request.items() if v is not ...}


def reject(obj_or_line, limits=TI2V) -> RequestError:
    line = obj_or_line if isinstance(obj_or_line, (str, bytes)) else json.dumps(obj_or_line)
    with pytest.raises(RequestError) as info:
        parse_request(line, limits)
    return info.value


def test_generate_parses_with_optional_defaults():
    req = parse_request(json.dumps(generate()), TI2V)
    assert isinstance(req, protocol.GenerateRequest)
    assert (req.job, req.width, req.height, req.frames, req.steps, req.seed) == ("j-1", 256, 256, 17, 4, 42)
    assert req.guidance == 5.0 and req.guidance_2 is None and req.fps is None and req.metadata is None
    assert req.png_frames is False and req.memory_saving is False and req.debug is None and req.interpolate == 1


def test_generate_optional_fields():
    req = parse_request(json.dumps(generate(guidance_2=3, png_frames=True, fps=30, metadata={"style": "noir"},
                                            memory_saving=True, prompt="一只红狐狸在雪地里")), TI2V)
    assert req.guidance_2 == 3.0 and req.png_frames and req.fps == 30 and req.metadata == {"style": "noir"}
    assert req.memory_saving and req.prompt == "一只红狐狸在雪地里"


@pytest.mark.parametrize("value, expected", [(..., 1), (None, 1), (1, 1), (2, 2), (4, 4)])
def test_interpolate_factors(value, expected):
    assert parse_request(json.dumps(generate(interpolate=value)), TI2V).interpolate == expected


@pytest.mark.parametrize("value, fragment", [
    (3, "interpolate: must be 1, 2 or 4, got 3"),
    (0, "interpolate: must be 1, 2 or 4, got 0"),
    (8, "interpolate: must be 1, 2 or 4, got 8"),
    ("2", "interpolate: expected an integer, got a string"),
    (True, "interpolate: expected an integer, got a boolean"),
    (2.5, "interpolate: expected an integer, got a number"),
])
def test_bad_interpolate_is_named(value, fragment):
    error = reject(generate(interpolate=value))
    assert error.message == fragment and error.job == "j-1"


@pytest.mark.parametrize("value, expected", [(..., None), (None, None), (0, None), (1, 1), (5, 5), (5.0, 5)])
def test_checkpoint_every(value, expected):
    assert parse_request(json.dumps(generate(checkpoint_every=value)), TI2V).checkpoint_every == expected


@pytest.mark.parametrize("value, fragment", [
    (-1, "checkpoint_every: -1 is below the minimum 0"),
    (1.5, "checkpoint_every: expected an integer, got a number"),
    ("2", "checkpoint_every: expected an integer, got a string"),
    (True, "checkpoint_every: expected an integer, got a boolean"),
])
def test_bad_checkpoint_every_is_named(value, fragment):
    error = reject(generate(checkpoint_every=value))
    assert error.message == fragment and error.job == "j-1"


def test_other_request_types():
    assert isinstance(parse_request('{"type":"ping"}', TI2V), protocol.PingRequest)
    assert isinstance(parse_request('{"type":"shutdown"}', TI2V), protocol.ShutdownRequest)
    assert parse_request('{"type":"cancel","job":"j-9"}', TI2V) == protocol.CancelRequest("j-9")
    assert parse_request(b'{"type":"ping","future_field":1}', TI2V) == protocol.PingRequest()


@pytest.mark.parametrize("line, fragment", [
    ("not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('"ping"', "must be a JSON object"),
    ('{"job":"x"}', "type: missing field"),
    ('{"type":"dance"}', "type: unknown request type"),
    (b"\xff\xfe", "not valid UTF-8"),
])
def test_malformed_lines(line, fragment):
    assert fragment in reject(line).message


@pytest.mark.parametrize("overrides, field", [
    ({"prompt": ...}, "prompt: missing field"),
    ({"prompt": "   "}, "prompt: must not be empty"),
    ({"prompt": 5}, "prompt: expected a string"),
    ({"negative_prompt": ...}, "negative_prompt: missing field"),
    ({"width": 250}, "width: 250 is not a multiple of this model's spatial stride 32"),
    ({"height": 100}, "height: 100 is not a multiple"),
    ({"width": 0}, "width: 0 is below the minimum 32"),
    ({"width": "256"}, "width: expected an integer"),
    ({"height": True}, "height: expected an integer"),
    ({"frames": 16}, "frames: 16 is not of the form 4n+1"),
    ({"frames": 0}, "frames: 0 is below the minimum 1"),
    ({"steps": 0}, "steps: 0 is below the minimum 1"),
    ({"seed": -1}, "seed: -1 is below the minimum 0"),
    ({"seed": 2**63}, "seed: 9223372036854775808 is above the maximum"),
    ({"guidance": "high"}, "guidance: expected a number"),
    ({"guidance": None}, "guidance: must not be null"),
    ({"out_dir": "relative/dir"}, "out_dir: must be an absolute path"),
    ({"png_frames": 1}, "png_frames: expected true or false"),
    ({"fps": 0}, "fps: 0 is below the minimum 1"),
    ({"metadata": [1]}, "metadata: expected an object"),
])
def test_invalid_fields_are_named(overrides, field):
    error = reject(generate(**overrides))
    assert field in error.message
    assert error.job == "j-1"  # the line had a usable job id, so the error event carries it


def test_non_finite_guidance_is_rejected():
    line = json.dumps(generate()).replace('"guidance": 5.0', '"guidance": NaN')
    assert "guidance: must be finite" in reject(line).message
    assert "guidance_2: must be finite" in reject(json.dumps(generate(guidance_2=math.inf))).message


def test_missing_or_unusable_job_id():
    error = reject(generate(job=...))
    assert error.message == "job: missing field" and error.job is None
    error = reject(generate(job=""))
    assert "job: must be a non-empty string" in error.message and error.job is None
    assert reject('{"type":"cancel"}').message == "job: missing field"


def test_seed_bounds_are_inclusive():
    assert parse_request(json.dumps(generate(seed=0)), TI2V).seed == 0
    assert parse_request(json.dumps(generate(seed=2**63 - 1)), TI2V).seed == 2**63 - 1


def test_debug_needs_the_environment_switch():
    request = generate(debug={"step_delay": 0.5})
    assert "REEL_ENGINE_ALLOW_FAULTS=1" in reject(request).message
    req = parse_request(json.dumps(generate(debug={"step_delay": 0.5, "crash_at_step": 2, "crash_in": "encoding",
                                                  "hang_at_step": 3, "encode_delay": 1})), FAULTS)
    assert req.debug == protocol.DebugHooks(step_delay=0.5, encode_delay=1.0, crash_at_step=2, crash_in="encoding",
                                            hang_at_step=3)
    assert parse_request(json.dumps(generate(debug={"crash_in": "interpolating"})), FAULTS).debug.crash_in == \
        "interpolating"
    assert "debug.crash_in" in reject(generate(debug={"crash_in": "nowhere"}), FAULTS).message
    assert "debug.step_delay" in reject(generate(debug={"step_delay": -1}), FAULTS).message


def test_events_are_single_json_lines():
    line = protocol.encode_event(protocol.error_event(None, "bad_request", "a\nmultiline 消息"))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"event": "error", "job": None, "code": "bad_request", "message": "a\nmultiline 消息"}
    assert json.loads(protocol.encode_event(protocol.ready_event(device="cpu")))["protocol"] == 1
    with pytest.raises(ValueError):
        protocol.encode_event({"event": "progress", "value": float("nan")})


def test_checkpoint_events():
    assert protocol.resumed_event("j-1", 38, 40) == {"event": "resumed", "job": "j-1", "step": 38, "total": 40}
    assert protocol.checkpoint_rejected_event("j-1", "corrupt: SHA-256 checksum mismatch") == {
        "event": "checkpoint_rejected", "job": "j-1", "reason": "corrupt: SHA-256 checksum mismatch"}


# ---------------------------------------------------------------------------------------------------------------
# Images: `image`, `last_image` and `fit` (the files themselves are checked by the job: test_images.py)

SHA = "ab" * 32
IMAGE = {"path": "/data/in/first.png", "sha256": SHA}
I2V = Limits(spatial_stride=16, temporal_stride=4, architecture="i2v-a14b")
T2V = Limits(spatial_stride=16, temporal_stride=4, architecture="t2v-a14b")
TI2V_MODEL = Limits(spatial_stride=32, temporal_stride=4, architecture="ti2v-5b")


def test_images_and_fit_parse():
    req = parse_request(json.dumps(generate(image=IMAGE, last_image={"path": "/data/in/../in/last.jpg",
                                                                     "sha256": SHA.upper()}, fit="contain")), I2V)
    assert req.image == protocol.ImageRef("/data/in/first.png", SHA)
    assert req.last_image == protocol.ImageRef("/data/in/last.jpg", SHA)  # normalised, hex in lower case
    assert req.fit == "contain"
    plain = parse_request(json.dumps(generate(image=None, last_image=None)), TI2V_MODEL)
    assert (plain.image, plain.last_image, plain.fit) == (None, None, "cover")
    assert parse_request(json.dumps(generate(image=IMAGE)), TI2V_MODEL).fit == "cover"


@pytest.mark.parametrize("overrides, message", [
    ({"image": "/data/in/first.png"}, "image: expected an object, got a string"),
    ({"image": {"sha256": SHA}}, "image.path: missing field"),
    ({"image": {"path": "in/first.png", "sha256": SHA}}, 'image.path: must be an absolute path, got "in/first.png"'),
    ({"image": {"path": "/a.png"}}, "image.sha256: missing field"),
    ({"image": {"path": "/a.png", "sha256": "abc"}}, 'image.sha256: must be 64 hexadecimal digits, got "abc"'),
    ({"image": IMAGE, "last_image": {"path": "/b.png", "sha256": 5}},
     "last_image.sha256: expected a string, got a number"),
    ({"image": IMAGE, "fit": "fill"}, 'fit: must be cover, contain or stretch, got "fill"'),
    ({"image": IMAGE, "fit": 1}, "fit: expected a string, got a number"),
])
def test_bad_image_fields_are_named(overrides, message):
    error = reject(generate(**overrides), I2V)
    assert error.message == message and error.job == "j-1"


def test_an_image_for_a_text_only_model_names_the_models_that_take_one():
    error = reject(generate(width=256, image=IMAGE), T2V)
    assert error.message == (
        "image: t2v-a14b models take no image; ti2v-5b and i2v-a14b models take one (tiny:ti2v-5b, tiny:i2v-a14b, "
        "random:ti2v-5b, random:i2v-a14b, or a Wan-AI/Wan2.2-TI2V-5B-Diffusers or Wan-AI/Wan2.2-I2V-A14B-Diffusers "
        "directory)")
    assert error.job == "j-1"


def test_i2v_needs_an_image_and_only_it_takes_a_last_one():
    assert reject(generate(), I2V).message == "image: missing field: i2v-a14b models need a first-frame image"
    error = reject(generate(image=IMAGE, last_image=IMAGE), TI2V_MODEL)
    assert error.message == ("last_image: ti2v-5b models take no last frame image; i2v-a14b models take one "
                             "(tiny:i2v-a14b, random:i2v-a14b, or a Wan-AI/Wan2.2-I2V-A14B-Diffusers directory)")
    assert reject(generate(last_image=IMAGE)).message == "last_image: needs an image too (the first frame)"
    assert reject(generate(image=IMAGE, last_image=IMAGE, frames=1), I2V).message == (
        "last_image: a video with a last frame needs more than 1 frame, got frames 1")
    # TI2V-5B: an image is optional.
    assert parse_request(json.dumps(generate()), TI2V_MODEL).image is None
