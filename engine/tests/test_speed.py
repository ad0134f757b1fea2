"""Exact speed-ups: cached text embeddings and regional compilation give the frames the plain path gives."""

import json

import numpy as np
import pytest
import torch

from reel_engine import cli, jobs, models, speed, startup
from reel_engine.pipeline import generate
from reel_engine.protocol import GenerateRequest

SIZE = dict(width=128, height=128, frames=9, steps=2, guidance=5.0, seed=3)


def test_a_cached_embedding_is_exactly_the_pipelines_own(tiny_ti2v):
    text = "a heron standing in a misty marsh"
    with torch.no_grad():  # as WanPipeline.__call__ runs it
        expected, _ = tiny_ti2v.pipe.encode_prompt(prompt=text, do_classifier_free_guidance=False,
                                                   max_sequence_length=512, device=tiny_ti2v.device)
    first, cached_first = tiny_ti2v.text.get(text)
    again, cached_again = tiny_ti2v.text.get(text)
    assert (cached_first, cached_again) == (False, True)
    assert again is first and torch.equal(first, expected.to(first.dtype))


def test_concurrent_requests_for_one_text_encode_it_once(tiny_ti2v):
    import threading

    text = "two cranes over a frozen lake"
    misses_before = tiny_ti2v.text.misses
    results = []
    threads = [threading.Thread(target=lambda: results.append(tiny_ti2v.text.get(text))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tiny_ti2v.text.misses == misses_before + 1
    assert sum(1 for _, cached in results if not cached) == 1
    assert all(torch.equal(r[0], results[0][0]) for r in results)


def test_the_fastest_attention_kernel_comes_first_and_math_last():
    assert speed.choose_attention({"flash": 0.030, "cudnn": 0.018, "efficient": 0.061}) == [
        "cudnn", "flash", "efficient", "math"]
    assert speed.choose_attention({"efficient": 0.05}) == ["efficient", "math"]


def test_compiled_transformer_blocks_give_the_eager_frames(tiny_ti2v, data_dir):
    eager = tiny_ti2v
    compiled = models.load_model("tiny", "cpu", data_dir)
    speed.compile_transformers(compiled)
    seconds = speed.warm_up(compiled, SIZE["width"], SIZE["height"], SIZE["frames"], passes=1)
    assert seconds > 0
    blocks = compiled.pipe.transformer.blocks
    assert all(getattr(b, "_compiled_call_impl", None) is not None for b in blocks)
    a = generate(eager, prompt="a red fox", negative_prompt="", output="float", **SIZE).video
    b = generate(compiled, prompt="a red fox", negative_prompt="", output="float", **SIZE).video
    assert a.shape == b.shape == (9, 128, 128, 3)
    # The same function up to floating-point reordering: float32 frames agree to well under one 8-bit level.
    assert float(np.abs(a - b).max()) < 1e-3


def test_an_offloaded_encoder_gives_the_same_embedding(tiny_ti2v):
    from reel_engine.textcache import TextEmbeddings

    model = tiny_ti2v  # on the CPU, offloading to the host moves nothing: the shared model is left as it was
    text = "a kite above a windy beach"
    resident, _ = model.text.get(text)
    offloaded = TextEmbeddings(model.pipe, model.device, resident.dtype, placement="offload")
    offloaded.offload_to_host()
    embedding, cached = offloaded.get(text)
    assert not cached and torch.equal(embedding, resident)


def test_approximate_speed_ups_are_named_and_bounded():
    assert speed.parse_approximate("first-block-cache") == ("first-block-cache", 0.05)
    assert speed.parse_approximate("first-block-cache:0.1") == ("first-block-cache", 0.1)
    for bad, fragment in (("teacache", "unknown"), ("first-block-cache:x", "not a number"),
                          ("first-block-cache:2", "between 0 and 1")):
        with pytest.raises(ValueError, match=fragment):
            speed.parse_approximate(bad)


def test_first_block_cache_is_opt_in_and_recorded_in_ready_and_job_json(data_dir, tmp_path):
    model = models.load_model("tiny", "cpu", data_dir)  # its own: the cache's hooks stay on its transformer
    args = cli.parse_args(["--device", "cpu", "--model", "tiny", "--approximate", "first-block-cache:0.5"])
    startup.prepare_for_speed(model, args.compile, args.approximate)  # as a real worker does before `ready`
    assert startup.ready_fields(model)["speed"]["approximate"] == {"name": "first-block-cache", "threshold": 0.5}
    req = GenerateRequest(job="a-1", prompt="a red fox in snow", negative_prompt="blurry", width=64, height=64,
                          frames=5, steps=6, guidance=5.0, seed=7, out_dir=str(tmp_path / "a-1"))
    final = jobs.run_job(model, jobs.Job(req), lambda event: None)
    assert final["event"] == "result", final
    with open(tmp_path / "a-1" / "job.json", encoding="utf-8") as f:
        assert json.load(f)["execution"]["approximate"] == {"name": "first-block-cache", "threshold": 0.5}


def test_an_unknown_approximate_speed_up_fails_the_start_by_name(tiny_ti2v):
    # Refused before the model is touched; a real worker reports what prepare_for_speed raises as its start error.
    with pytest.raises(ValueError) as e:
        startup.prepare_for_speed(tiny_ti2v, "auto", "teacache")
    code, message = startup.load_error(e.value)
    assert code == "model_error" and "teacache" in message and "first-block-cache" in message
