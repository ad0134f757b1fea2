"""The model catalog, catalog.json: the engine reads its values from it, it ships in the package, its values hold
together (strides, presets, defaults), and the Swift copy generated from it (scripts/embed-catalog.py) is current and
goes stale when the catalog changes."""

import importlib.util
import json
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

from reel_engine import catalog
from reel_engine.catalog import A14B, I2V, TI2V, ModelError

ENGINE = pathlib.Path(__file__).resolve().parent.parent
REPO = ENGINE.parent
SCRIPT = REPO / "scripts" / "embed-catalog.py"
GENERATED = REPO / "Sources" / "ReelCore" / "ModelCatalog.generated.swift"


def raw() -> dict:
    return json.loads((ENGINE / "reel_engine" / "catalog.json").read_text(encoding="utf-8"))


def test_the_engine_reads_its_values_from_the_catalog():
    data = raw()
    by_name = {a["name"]: a for a in data["architectures"]}
    assert catalog.ARCHITECTURES == (TI2V, A14B, I2V) == tuple(by_name)
    for name, a in by_name.items():
        assert catalog.REPOS[name] == a["repo"] and catalog.FPS[name] == a["fps"]
        assert catalog.IMAGE[name] == a["image"] and catalog.LAST_IMAGE[name] is a["last_image"]
        assert catalog.STRIDES[name] == (a["spatial_stride"], a["temporal_stride"])
        assert catalog.DEFAULTS[name].to_json() == a["defaults"]
        assert catalog.TINY_DEFAULTS[name].to_json() == a["tiny_defaults"]
        assert catalog.PRESETS[name] == tuple((p["name"], p["width"], p["height"]) for p in a["presets"])
    assert catalog.MODEL_NAMES == tuple(m["name"] for m in data["models"])


def test_the_values_a_worker_reports():
    assert catalog.MODEL_NAMES == ("tiny", "tiny:ti2v-5b", "tiny:t2v-a14b", "tiny:i2v-a14b", "random:ti2v-5b",
                                   "random:t2v-a14b", "random:i2v-a14b")
    assert (catalog.FPS, catalog.STRIDES) == ({TI2V: 24, A14B: 16, I2V: 16},
                                              {TI2V: (32, 4), A14B: (16, 4), I2V: (16, 4)})
    assert catalog.REPOS == {TI2V: "Wan-AI/Wan2.2-TI2V-5B-Diffusers", A14B: "Wan-AI/Wan2.2-T2V-A14B-Diffusers",
                             I2V: "Wan-AI/Wan2.2-I2V-A14B-Diffusers"}
    assert catalog.IMAGE == {TI2V: "optional", A14B: "none", I2V: "required"}
    assert catalog.LAST_IMAGE == {TI2V: False, A14B: False, I2V: True}
    assert catalog.TWO_EXPERTS == (A14B, I2V)
    assert catalog.PIPELINE_CLASSES == {TI2V: "WanPipeline", A14B: "WanPipeline", I2V: "WanImageToVideoPipeline"}
    # Wan-Video/Wan2.2's wan/configs/wan_i2v_A14B.py: 40 steps, guidance 3.5 for both experts; 81 frames, 1280*720.
    assert catalog.model_defaults("random", I2V).to_json() == {"width": 1280, "height": 720, "frames": 81,
                                                               "steps": 40, "guidance": 3.5, "guidance_2": 3.5}
    assert catalog.PRESETS[I2V] == catalog.PRESETS[A14B]
    assert catalog.model_defaults("random", TI2V).to_json() == {"width": 1280, "height": 704, "frames": 121,
                                                                "steps": 50, "guidance": 5.0}
    assert catalog.model_defaults("directory", A14B).to_json() == {"width": 1280, "height": 720, "frames": 81,
                                                                   "steps": 40, "guidance": 4.0, "guidance_2": 3.0}
    assert catalog.model_defaults("tiny", A14B).to_json() == {"width": 256, "height": 256, "frames": 17, "steps": 4,
                                                              "guidance": 5.0, "guidance_2": 5.0}
    assert catalog.PRESETS[TI2V][0] == ("720p", 1280, 704) and catalog.PRESETS[A14B][2] == ("480p", 832, 480)


@pytest.mark.parametrize("name, kind, architecture", [
    ("tiny", "tiny", TI2V), ("tiny:ti2v-5b", "tiny", TI2V), ("tiny:t2v-a14b", "tiny", A14B),
    ("tiny:i2v-a14b", "tiny", I2V), ("random:ti2v-5b", "random", TI2V), ("random:t2v-a14b", "random", A14B),
    ("random:i2v-a14b", "random", I2V),
])
def test_every_built_in_name_parses_as_the_catalog_says(name, kind, architecture):
    parsed = catalog.parse_model_name(name)
    assert (parsed.kind, parsed.architecture, parsed.path, parsed.random_weights) == (kind, architecture, None, True)


def test_unknown_built_in_names_list_the_catalogs():
    with pytest.raises(ModelError, match=r"^unknown model 'random:x'; random models are random:ti2v-5b, "
                                         r"random:t2v-a14b and random:i2v-a14b$"):
        catalog.parse_model_name("random:x")
    with pytest.raises(ModelError, match=r"^unknown model 'tiny:x'; tiny models are tiny \(= tiny:ti2v-5b\), "
                                         r"tiny:t2v-a14b and tiny:i2v-a14b$"):
        catalog.parse_model_name("tiny:x")
    assert catalog.parse_model_name("tiny-but-a-directory").kind == "directory"


def test_sizes_are_multiples_of_the_strides_and_frames_are_4n_plus_1():
    for a in raw()["architectures"]:
        stride, temporal = a["spatial_stride"], a["temporal_stride"]
        for d in (a["defaults"], a["tiny_defaults"]):
            assert d["width"] % stride == 0 and d["height"] % stride == 0, (a["name"], d)
            assert (d["frames"] - 1) % temporal == 0 and d["steps"] >= 1, (a["name"], d)
            assert ("guidance_2" in d) is (a["name"] in (A14B, I2V))  # only the two-expert ones have two
        names = [p["name"] for p in a["presets"]]
        assert len(set(names)) == len(names) and a["presets"][0]["name"] == "720p"
        for p in a["presets"]:
            assert p["width"] % stride == 0 and p["height"] % stride == 0, (a["name"], p)


def test_every_model_names_a_known_architecture_and_an_alias_its_target():
    data = raw()
    models = {m["name"]: m for m in data["models"]}
    architectures = {a["name"] for a in data["architectures"]}
    for m in models.values():
        assert m["kind"] in ("tiny", "random") and m["architecture"] in architectures, m
        if "alias_of" in m:
            target = models[m["alias_of"]]
            assert (target["kind"], target["architecture"]) == (m["kind"], m["architecture"])
            assert "alias_of" not in target
    for kind in ("tiny", "random"):  # one model of each kind per architecture, aliases aside
        assert sorted(m["architecture"] for m in models.values() if m["kind"] == kind and "alias_of" not in m) == (
            sorted(architectures))


def test_the_package_ships_the_catalog(tmp_path):
    """A wheel built from the engine holds catalog.json next to catalog.py."""
    project = tmp_path / "engine"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ENGINE / name, project / name)
    shutil.copytree(ENGINE / "reel_engine", project / "reel_engine", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w",
                    str(tmp_path / "dist"), str(project)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("reel_engine-*.whl")
    with zipfile.ZipFile(wheel) as z:
        assert json.loads(z.read("reel_engine/catalog.json")) == raw()
        assert "reel_engine/catalog.py" in z.namelist()


# ---------------------------------------------------------------------------------------------------------------
# The Swift copy: Sources/ReelCore/ModelCatalog.generated.swift

needs_the_repository = pytest.mark.skipif(not SCRIPT.is_file(), reason="scripts/embed-catalog.py is not beside engine/")


@pytest.fixture
def embed(monkeypatch, tmp_path):
    """scripts/embed-catalog.py as a module, reading a catalog and writing a Swift file of this test's."""
    spec = importlib.util.spec_from_file_location("embed_catalog", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "CATALOG", tmp_path / "catalog.json")
    monkeypatch.setattr(module, "OUT", tmp_path / "ModelCatalog.generated.swift")
    module.CATALOG.write_text(json.dumps(raw()), encoding="utf-8")
    return module


@needs_the_repository
def test_the_generated_swift_file_is_current():
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@needs_the_repository
def test_the_swift_file_holds_every_value_of_the_catalog(embed):
    assert embed.main([]) == 0
    swift = embed.OUT.read_text(encoding="utf-8")
    assert swift == GENERATED.read_text(encoding="utf-8")  # the same as the committed one
    assert swift.startswith("// Generated by scripts/embed-catalog.py from engine/reel_engine/catalog.json")
    assert "import " not in swift  # self-contained
    assert ("defaults: Defaults(width: 1280, height: 720, frames: 81, steps: 40, guidance: 4.0, guidance2: 3.0),"
            in swift)
    for a in raw()["architectures"]:
        assert f'name: "{a["name"]}",\n            repo: "{a["repo"]}",\n            fps: {a["fps"]},' in swift
        assert f'spatialStride: {a["spatial_stride"]},\n            temporalStride: {a["temporal_stride"]},' in swift
        for p in a["presets"]:
            assert f'Preset(name: "{p["name"]}", width: {p["width"]}, height: {p["height"]}),' in swift
    assert 'name: "tiny", kind: .tiny, architecture: "ti2v-5b", aliasOf: "tiny:ti2v-5b",' in swift
    assert 'name: "random:t2v-a14b", kind: .random, architecture: "t2v-a14b", aliasOf: nil,' in swift
    assert 'name: "tiny:i2v-a14b", kind: .tiny, architecture: "i2v-a14b", aliasOf: nil,' in swift
    for a in raw()["architectures"]:  # each architecture's image inputs close its entry
        use = {"none": "never", "optional": "optional", "required": "required"}[a["image"]]
        entry = swift.split(f'name: "{a["name"]}",\n            repo:')[1]
        last = str(a["last_image"]).lower()
        assert f'            ],\n            image: .{use},\n            lastImage: {last},\n' in entry
        for key, name in (("transformer", "transformer"), ("tiny_transformer", "tinyTransformer")):
            s = a[key]
            assert (f'            {name}: TransformerShape(\n                dim: {s["dim"]}, ffnDim: {s["ffn_dim"]}, '
                    f'blocks: {s["blocks"]}, inChannels: {s["in_channels"]}, outChannels: {s["out_channels"]},\n'
                    f'                textDim: {s["text_dim"]}, freqDim: {s["freq_dim"]})') in entry
    assert swift.count("        ModelEntry(\n") == len(raw()["models"])
    assert swift.count("        ArchitectureEntry(\n") == len(raw()["architectures"])


@needs_the_repository
def test_the_check_fails_once_the_catalog_changes(embed, capsys):
    assert embed.main([]) == 0 and embed.main(["--check"]) == 0
    data = raw()
    data["architectures"][0]["presets"].append({"name": "tall", "width": 288, "height": 512})
    embed.CATALOG.write_text(json.dumps(data), encoding="utf-8")
    assert embed.main(["--check"]) == 1
    assert "is out of date; run python3 scripts/embed-catalog.py" in capsys.readouterr().err
    assert embed.main([]) == 0 and embed.main(["--check"]) == 0
    assert 'Preset(name: "tall", width: 288, height: 512),' in embed.OUT.read_text(encoding="utf-8")


@needs_the_repository
@pytest.mark.parametrize("change, message", [
    (lambda d: d["models"][0].update(kind="huge"), "model 'tiny' is of kind 'huge', not one of tiny, random"),
    (lambda d: d["models"][4].update(architecture="sdxl"), "model 'random:ti2v-5b' names the unknown architecture"),
    (lambda d: d["architectures"][0].update(fps="24"), "'24' is not an integer"),
    (lambda d: d["architectures"][2].update(image="sometimes"), "image 'sometimes' is not one of none, optional"),
    (lambda d: d["architectures"][2].update(last_image=1), "1 is not true or false"),
])
def test_a_catalog_the_generator_cannot_express_is_refused(embed, change, message):
    data = raw()
    change(data)
    embed.CATALOG.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(SystemExit, match=message):
        embed.main([])
    assert not embed.OUT.exists()


@pytest.mark.parametrize("tiny", [False, True])
def test_the_catalogs_transformer_shapes_are_those_the_engine_builds(tiny):
    """The Swift side reads a LoRA file's fit from catalog.json's transformer shapes: they must be the shapes of the
    transformers model_configs.py builds, full size and tiny."""
    from reel_engine.model_configs import component_configs

    for entry in raw()["architectures"]:
        shape = entry["tiny_transformer" if tiny else "transformer"]
        config = component_configs(entry["name"], tiny)["transformer"]
        built = {"dim": config["num_attention_heads"] * config["attention_head_dim"], "ffn_dim": config["ffn_dim"],
                 "blocks": config["num_layers"], "in_channels": config["in_channels"],
                 "out_channels": config["out_channels"], "text_dim": config["text_dim"],
                 "freq_dim": config["freq_dim"]}
        assert shape == built, entry["name"]
