"""The scripted worker's model: for the same model name and flags it reports what the real worker reports, and it
refuses at start what the real worker refuses. (Its parity with the loaded tiny models is in test_models.py, which
loads them anyway.)"""

import re

import pytest

from reel_engine import catalog, cli, distributed, model_configs, scripted_model
from reel_engine.catalog import ModelError


@pytest.fixture
def scripted(data_dir):
    def load(*argv):
        return scripted_model.load(cli.parse_args(["--data-dir", data_dir, *argv]))
    return load


@pytest.mark.parametrize("architecture", catalog.ARCHITECTURES)
@pytest.mark.parametrize("tiny", [True, False])
def test_attention_heads_and_widths_are_the_model_configs(architecture, tiny):
    config = model_configs.component_configs(architecture, tiny)["transformer"]
    assert scripted_model.ATTENTION_HEADS[(architecture, tiny)] == config["num_attention_heads"]
    width = config["num_attention_heads"] * config["attention_head_dim"]
    for dtype in ("float32", "bfloat16"):
        assert scripted_model.COMPONENT_SIZES[(architecture, tiny, dtype)].width == width


def test_a_full_size_random_model_on_the_cpu(scripted):
    ready = scripted("--device", "cpu", "--model", "random:t2v-a14b").ready_fields()
    assert (ready["architecture"], ready["dtype"], ready["fps"], ready["spatial_stride"]) == ("t2v-a14b", "float32",
                                                                                               16, 16)
    assert ready["defaults"] == {"width": 1280, "height": 720, "frames": 81, "steps": 40, "guidance": 4.0,
                                 "guidance_2": 3.0}
    assert ready["random_weights"] is True and ready["model_path"] is None
    assert ready["placement"]["tier"] == "resident" and ready["placement"]["budget_gib"] is None


def test_a_memory_budget_on_a_gpu_picks_a_placement_that_fits(scripted):
    resident = scripted("--device", "cuda", "--model", "random:ti2v-5b").ready_fields()
    assert (resident["device"], resident["dtype"]) == ("cuda:0", "bfloat16")
    assert resident["placement"]["tier"] == "resident" and resident["speed"]["compiled"] is True
    assert resident["speed"]["attention_backend"] == "cudnn"
    budget = resident["placement"]["estimated_peak_gib"] - 1
    tight = scripted("--device", "cuda", "--model", "random:ti2v-5b", "--memory-budget", str(budget)).ready_fields()
    assert tight["placement"]["tier"] != "resident" and tight["placement"]["budget_gib"] == round(budget, 1)
    assert tight["placement"]["estimated_peak_gib"] <= budget
    with pytest.raises(ModelError, match="is too small for this model"):
        scripted("--device", "cuda", "--model", "random:ti2v-5b", "--memory-budget", "2")
    with pytest.raises(ModelError, match=r"--memory-budget 200 GiB is more than cuda:0's 80\.0 GiB"):
        scripted("--device", "cuda", "--model", "random:ti2v-5b", "--memory-budget", "200")


def test_speed_flags(scripted):
    speed = scripted("--device", "cpu", "--model", "tiny", "--approximate", "first-block-cache:0.1").speed
    assert speed == {"approximate": {"name": "first-block-cache", "threshold": 0.1}, "compiled": False}
    assert scripted("--device", "cpu", "--model", "tiny", "--compile", "on").speed["compiled"] is True
    with pytest.raises(ValueError, match="unknown; the approximate speed-ups are first-block-cache"):
        scripted("--device", "cpu", "--model", "tiny", "--approximate", "teacache")


def test_a_text_device_is_the_split_layout(scripted):
    ready = scripted("--device", "cuda:0", "--text-device", "cuda:1", "--model", "random:ti2v-5b").ready_fields()
    assert (ready["placement"]["text_device"], ready["placement"]["text_encoder"]) == ("cuda:1", "device")


@pytest.mark.parametrize("gpus, device, reported", [
    (None, "cuda:7", "cuda:7"),  # unset: any GPU is simulated
    ("2", "cuda", "cuda:0"),
    ("2", "cuda:1", "cuda:1"),
    ("8", "cuda:7", "cuda:7"),
])
def test_the_simulated_gpus_exist(scripted, monkeypatch, gpus, device, reported):
    if gpus is None:
        monkeypatch.delenv(scripted_model.GPUS_ENV, raising=False)
    else:
        monkeypatch.setenv(scripted_model.GPUS_ENV, gpus)
    assert scripted("--device", device, "--model", "tiny").ready_fields()["device"] == reported


@pytest.mark.parametrize("gpus, argv, message", [
    ("2", ["--device", "cuda:2"], "device cuda:2: only 2 CUDA device(s) are visible"),
    ("1", ["--device", "cuda:0", "--text-device", "cuda:1"], "text device cuda:1: only 1 CUDA device(s) are visible"),
    ("0", ["--device", "cuda"], "device cuda: CUDA is not available to this torch build or machine"),
    ("two", ["--device", "cuda:0"], "REEL_SCRIPTED_GPUS='two': expected a number of GPUs >= 0"),
])
def test_a_gpu_the_scripted_machine_lacks_is_refused(scripted, monkeypatch, gpus, argv, message):
    monkeypatch.setenv(scripted_model.GPUS_ENV, gpus)
    with pytest.raises(ModelError) as e:
        scripted(*argv, "--model", "tiny")
    assert str(e.value) == message
    assert scripted("--device", "cpu", "--model", "tiny").device == "cpu"  # the CPU is always there


@pytest.mark.parametrize("argv, error, fragment", [
    (["--model", "tiny:nope"], ModelError, "unknown model 'tiny:nope'; tiny models are"),
    (["--model", "random:sdxl"], ModelError, "random models are random:ti2v-5b, random:t2v-a14b and random:i2v-a14b"),
    (["--model", "/no/such/model"], ModelError, "model directory /no/such/model does not exist"),
    (["--model", "tiny", "--device", "gpu"], ModelError, "device 'gpu': expected cpu, cuda or cuda:N"),
    (["--model", "tiny", "--memory-budget", "0"], ModelError, "--memory-budget must be a positive number"),
    (["--model", "tiny", "--rank", "0", "--world-size", "3", "--dist-init", "file:///tmp/x"],
     distributed.GroupError, "--world-size 3 does not divide the model's 2 attention heads"),
    (["--model", "tiny", "--rank", "0"], distributed.GroupError, "--rank, --world-size and --dist-init go together"),
])
def test_what_a_real_worker_refuses_at_start_is_refused(scripted, argv, error, fragment):
    argv = argv if "--device" in argv else ["--device", "cpu", *argv]
    with pytest.raises(error, match=re.escape(fragment)):
        scripted(*argv)
