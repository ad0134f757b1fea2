#!/usr/bin/env python3
"""ComfyUI's API on Reel, with real clients from PyPI and the official Wan2.2 templates, against `reel serve` with
the real engine and tiny models.

    python3 e2e/comfy/test_comfy.py [--reel .build/debug/reel] [--python .venv/bin/python]

- The official templates (comfyui-workflow-templates-json 0.1.123: video_wan2_2_14B_t2v, video_wan2_2_14B_i2v,
  video_wan2_2_14B_flf2v, video_wan2_2_5B_ti2v; and the old flat 14B T2V and I2V of comfyui-workflow-templates
  0.1.95, their Lightning LoRA group on, with small LoRA files of those names; all UI format) are converted to
  API format by comfy-cli's converter (`comfy_cli.workflow_to_api.convert_ui_to_api`) against Reel's own
  /object_info, shrunk to tiny sizes by editing their values, and queued: each makes an MP4 with the frame count
  and size the prompt asks for.
- comfy-api-simplified queues a prompt and waits on /ws, then fetches the video through /history and /view;
  comfy-toolkit submits and polls /history; both check /system_stats, /object_info and /queue on the way.
- A kill -9 of the server while a client waits on /ws: after a restart on the same data directory the job
  completes, the client's new socket gets `executing {node: null}`, and /history has the video.
- Every error shape: an unknown node, a bad link, a bad value, a file of another model, no prompt, a bad
  prompt_id, Reel's own validation (on the node it came from), /view escaping its folder; with API keys, the
  routes and the socket need the key.
"""
import argparse
import copy
import io
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[2]
KEY = "reel-comfy-e2e-key-0123456789"
SIZE = 64
FRAMES = 5


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, args, model, data_dir, port=None, keys=None):
        self.args, self.model, self.data_dir, self.keys = args, model, data_dir, keys
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self):
        env = dict(os.environ, REEL_PYTHON=str(self.args.python), REEL_ENGINE=str(ROOT / "engine"),
                   OMP_NUM_THREADS="1")
        env.pop("REEL_API_KEYS", None)
        if self.keys:
            env["REEL_API_KEYS"] = ",".join(self.keys)
        log = open(self.data_dir / "server.log", "ab")
        self.process = subprocess.Popen(
            [str(self.args.reel), "serve", "--port", str(self.port), "--data-dir", str(self.data_dir),
             "--devices", "cpu", "--model", self.model, "--log-level", "warning"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=5) as r:
                    if r.status == 200 and json.load(r).get("ready", True):
                        break
            except (OSError, urllib.error.URLError, ValueError):
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("reel serve did not start:\n" + (self.data_dir / "server.log").read_text()[-3000:])
            time.sleep(0.2)
        return self

    def kill9(self):
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def call(base, path, body=None, key=None, method=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw


def check(condition, message):
    if not condition:
        raise AssertionError(message)
    print("  ok:", message.splitlines()[0][:150])


def probe(data):
    import av
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        return len(frames), frames[0].width, frames[0].height, stream.codec_context.name


# ---------------------------------------------------------------------------------------------------------------
# The official templates, as a user's script would take them: UI format → comfy-cli's converter → API format.

def template(name, old=False):
    """A template of comfyui-workflow-templates-json 0.1.123 (the current ones, the 14B ones subgraphs), or with
    `old` of comfyui-workflow-templates 0.1.95 (the flat July-2025 ones that ComfyUI of October 2025 pins, their
    Lightning group on)."""
    if old:
        import comfyui_workflow_templates as package
    else:
        import comfyui_workflow_templates_json as package
    path = pathlib.Path(package.__file__).parent / "templates" / f"{name}.json"
    return json.loads(path.read_text())


def to_api(base, name, key=None, old=False):
    from comfy_cli.workflow_to_api import convert_ui_to_api
    _, object_info = call(base, "/object_info", key=key)
    return convert_ui_to_api(template(name, old), object_info)


def write_loras(data_dir, names, architecture):
    """Small random LoRA files of the tiny model's shapes under the names the templates load, in ComfyUI's (kijai)
    key layout, into the server's LoRA library."""
    sys.path.insert(0, str(ROOT / "engine" / "tests"))
    from lora_files import random_pairs, write_original

    from reel_engine import loras
    from reel_engine.model_configs import component_configs
    targets = loras.targets_from_config(component_configs(architecture, True)["transformer"], architecture)
    (data_dir / "loras").mkdir(exist_ok=True)
    for seed, name in enumerate(names):
        write_original(data_dir / "loras" / name, random_pairs(targets, 4, seed=seed + 1, magnitude=0.05))


def source(api, link):
    return link[0] if isinstance(link, list) else None


def shrink(api):
    """The template at tiny sizes, by editing its values only: 64x64, 5 frames, 4 steps (split at 2)."""
    for node in api.values():
        inputs = node["inputs"]
        if node["class_type"] in ("EmptyHunyuanLatentVideo", "Wan22ImageToVideoLatent", "WanImageToVideo",
                                  "WanFirstLastFrameToVideo"):
            inputs["width"] = inputs["height"] = SIZE
            length = inputs["length"]
            if isinstance(length, list):  # the current templates: floor(duration * fps) + 1
                math = api[source(api, length)]
                duration = api[source(api, math["inputs"]["values.a"])]
                fps = api[source(api, math["inputs"]["values.b"])]["inputs"]["value"]
                duration["inputs"]["value"] = (FRAMES - 1) / fps
            else:
                inputs["length"] = FRAMES
        if node["class_type"] == "KSampler":
            inputs["steps"] = 4

    samplers = [n for n in api.values() if n["class_type"] == "KSamplerAdvanced"]

    def literal(node, name, value):
        value_of = node["inputs"][name]
        if isinstance(value_of, list):  # through a ComfySwitchNode: its turbo-off branch's PrimitiveInt
            switch = api[source(api, value_of)]
            api[source(api, switch["inputs"]["on_false"])]["inputs"]["value"] = value
        else:
            node["inputs"][name] = value

    if samplers:
        first = next(n for n in samplers if n["inputs"]["add_noise"] == "enable")
        literal(first, "steps", 4)
        literal(first, "end_at_step", 2)
        for n in samplers:
            if not isinstance(n["inputs"]["steps"], list):
                n["inputs"]["steps"] = 4
            if n is not first and not isinstance(n["inputs"]["start_at_step"], list):
                n["inputs"]["start_at_step"] = 2
    return api


def run_template(server, name, key=None, old=False):
    api = shrink(to_api(server.base, name, key, old))
    status, answer = call(server.base, "/prompt", {"prompt": api, "client_id": "e2e"}, key=key)
    check(status == 200 and answer["node_errors"] == {}, f"{name}: queued ({status} {str(answer)[:300]})")
    entry = wait_history(server.base, answer["prompt_id"], key=key)
    check(entry["status"]["status_str"] == "success", f"{name}: succeeded ({str(entry['status'])[:300]})")
    (output,) = entry["outputs"].values()
    (file,) = output["images"]
    check(output.get("animated") == [True], f"{name}: SaveVideo's output shape (images + animated)")
    video = fetch(server.base, file, key)
    frames, width, height, codec = probe(video)
    check((frames, width, height, codec) == (FRAMES, SIZE, SIZE, "h264"),
          f"{name}{' (0.1.95)' if old else ''}: the MP4 decodes with {frames} frames of {width}x{height} ({codec})")
    return answer["prompt_id"]


def run_lightning(server, name):
    """An old flat template, its Lightning LoRA group on: the job carries both LoRAs, each on its expert."""
    prompt_id = run_template(server, name, old=True)
    _, job = call(server.base, f"/v1/jobs/{prompt_id}")
    applied = {(lora["name"], lora["expert"]) for lora in job["spec"]["loras"]}
    check(len(applied) == 2 and {e for _, e in applied} == {"high", "low"}
          and all("lightx2v_4steps" in n for n, _ in applied), f"{name}: the Lightning pair on both experts {applied}")
    check(job["spec"]["steps"] == 4 and job["spec"]["guidance"] == 1, "4 steps without guidance, as the template")


def wait_history(base, prompt_id, key=None, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, history = call(base, f"/history/{prompt_id}", key=key)
        if status == 200 and history:
            return history[prompt_id]
        time.sleep(0.3)
    raise AssertionError(f"{prompt_id} never reached /history")


def fetch(base, file, key=None):
    query = urllib.parse.urlencode({"filename": file["filename"], "subfolder": file["subfolder"],
                                    "type": file["type"]})
    request = urllib.request.Request(base + "/view?" + query,
                                     headers={"Authorization": f"Bearer {key}"} if key else {})
    with urllib.request.urlopen(request, timeout=60) as r:
        return r.read()


def png(width=96, height=96):
    import numpy
    from PIL import Image
    y, x = numpy.indices((height, width))
    pixels = numpy.stack([x * 255 // width, y * 255 // height, (x + y) % 256], axis=-1).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(base, name, data, key=None):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(base + "/upload/image", data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as r:
        return json.load(r)


# ---------------------------------------------------------------------------------------------------------------

def clients(server):
    print("real clients (comfy-api-simplified, comfy-toolkit):")
    from comfy_api_simplified import ComfyApiWrapper, ComfyWorkflowWrapper
    from comfy_toolkit import ComfyClient
    api = shrink(to_api(server.base, "video_wan2_2_14B_t2v"))
    path = server.data_dir / "t2v.api.json"
    path.write_text(json.dumps(api))

    wrapper = ComfyApiWrapper(server.base)
    check("devices" in wrapper.get_system_stats(), "comfy-api-simplified: /system_stats")
    check("KSamplerAdvanced" in wrapper.get_object_info(), "comfy-api-simplified: /object_info")
    workflow = ComfyWorkflowWrapper(str(path))
    workflow.set_node_param("Save Video", "filename_prefix", "video/simplified")
    results = wrapper.queue_and_wait_images(workflow, "Save Video")
    (name, data), = results.items()
    check(name.startswith("simplified_") and name.endswith(".mp4"), f"comfy-api-simplified: got {name}")
    check(probe(data)[:3] == (FRAMES, SIZE, SIZE), "comfy-api-simplified: its video decodes at the right size")

    client = ComfyClient(server.base)
    check(client.is_online(), "comfy-toolkit: is_online (/system_stats)")
    prompt_id = client.submit(api)
    result = client.wait(prompt_id, expect="any", poll_interval=0.3, max_wait=300)
    check(result["status"] == "completed", f"comfy-toolkit: completed ({str(result)[:200]})")
    check(client.queue_status()["running"] == 0, "comfy-toolkit: /queue is empty again")


def survives_kill(args, data_dir):
    print("kill -9 of the server while a client waits on /ws:")
    from websockets.sync.client import connect
    server = Server(args, "tiny:t2v-a14b", data_dir).start()
    api = shrink(to_api(server.base, "video_wan2_2_14B_t2v"))
    # Slow enough to be running when the server dies: more steps, and the 16-step schedule split at 8.
    for node in api.values():
        if node["class_type"] == "PrimitiveInt" and node["inputs"]["value"] == 4:
            node["inputs"]["value"] = 16
        if node["class_type"] == "PrimitiveInt" and node["inputs"]["value"] == 2:
            node["inputs"]["value"] = 8
    client_id = uuid.uuid4().hex
    with connect(f"ws://127.0.0.1:{server.port}/ws?clientId={client_id}") as ws:
        first = json.loads(ws.recv(timeout=30))
        check(first["type"] == "status" and first["data"]["sid"] == client_id, "status with the sid on connect")
        status, answer = call(server.base, "/prompt", {"prompt": api, "client_id": client_id})
        prompt_id = answer["prompt_id"]
        seen = []
        while True:
            message = ws.recv(timeout=120)
            check(isinstance(message, str), "only text frames") if not seen else None
            message = json.loads(message)
            seen.append(message["type"])
            if message["type"] == "progress":
                break
    check("execution_start" in seen and "executing" in seen, f"execution_start, executing, progress: {seen}")
    server.kill9()
    check(True, "server killed with SIGKILL mid-denoising")
    server.start()
    with connect(f"ws://127.0.0.1:{server.port}/api/ws?clientId={client_id}") as ws:
        done = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and done is None:
            message = json.loads(ws.recv(timeout=300))
            if message["type"] == "executing" and message["data"]["node"] is None \
                    and message["data"]["prompt_id"] == prompt_id:
                done = message
            if message["type"] == "status" and message["data"]["status"]["exec_info"]["queue_remaining"] == 0:
                # Finished between the restart and the connect: /history says so below.
                break
    entry = wait_history(server.base, prompt_id)
    check(entry["status"]["status_str"] == "success", "after the restart the job completed")
    (output,) = entry["outputs"].values()
    check(probe(fetch(server.base, output["images"][0]))[:3] == (FRAMES, SIZE, SIZE), "and its video decodes")
    status, job = call(server.base, f"/v1/jobs/{prompt_id}")
    check(status == 200 and job["attempts"] >= 2,
          f"the same prompt id is a Reel job, run again (attempts {job['attempts']})")
    server.stop()


def errors(server):
    print("error shapes:")
    base = server.base
    good = shrink(to_api(base, "video_wan2_2_14B_t2v"))

    def refused(prompt, expect_type, node=None, input_name=None, body=None):
        status, answer = call(base, "/prompt", body if body is not None else {"prompt": prompt})
        check(status == 400, f"{expect_type}: 400 ({status})")
        if node is None:
            check(answer["error"]["type"] == expect_type, f"error.type {answer['error']['type']}")
            return answer
        errors = answer["node_errors"][node]["errors"]
        same_class = answer["node_errors"][node]["class_type"] == prompt[node]["class_type"]
        check(errors[0]["type"] == expect_type and same_class,
              f"node_errors[{node}] ({prompt[node]['class_type']}): {errors[0]['type']}: {errors[0]['message'][:100]}")
        if input_name:
            check(errors[0]["extra_info"]["input_name"] == input_name, f"names the input {input_name}")
        return answer

    p = copy.deepcopy(good)
    p["999"] = {"class_type": "SaveImage", "inputs": {"images": ["128:87", 0]}}
    answer = refused(p, "invalid_prompt", "999")
    p = copy.deepcopy(good)
    sampler = next(k for k, v in p.items()
                   if v["class_type"] == "KSamplerAdvanced" and v["inputs"]["add_noise"] == "enable")
    p[sampler]["inputs"]["positive"] = ["nope", 0]
    refused(p, "bad_linked_input", sampler, "positive")
    p = copy.deepcopy(good)
    del p[sampler]["inputs"]["negative"]
    refused(p, "required_input_missing", sampler, "negative")
    p = copy.deepcopy(good)
    p[sampler]["inputs"]["sampler_name"] = "dpmpp_2m"
    refused(p, "value_not_in_list", sampler, "sampler_name")
    p = copy.deepcopy(good)
    p[sampler]["inputs"]["noise_seed"] = -1
    refused(p, "value_smaller_than_min", sampler, "noise_seed")
    p = copy.deepcopy(good)
    unet = next(k for k, v in p.items() if v["class_type"] == "UNETLoader")
    p[unet]["inputs"]["unet_name"] = "wan2.2_ti2v_5B_fp16.safetensors"
    answer = refused(p, "value_not_in_list", unet, "unet_name")
    check("ti2v-5b" in answer["node_errors"][unet]["errors"][0]["message"], "says which model the file is for")
    p = copy.deepcopy(good)
    latent = next(k for k, v in p.items() if v["class_type"] == "EmptyHunyuanLatentVideo")
    p[latent]["inputs"]["width"] = 72  # not a multiple of Reel's 16: Reel's own check, on the node it came from
    answer = refused(p, "custom_validation_failed", latent, "width")
    refused(None, "no_prompt", body={})
    refused(None, "invalid_prompt_id", body={"prompt": good, "prompt_id": "not-a-uuid"})
    # A client's own prompt_id: the same prompt again is the same job; another prompt under it is refused.
    fixed = str(uuid.uuid4())
    first = call(base, "/prompt", {"prompt": good, "prompt_id": fixed})
    again = call(base, "/prompt", {"prompt": json.loads(json.dumps(good)), "prompt_id": fixed})
    check(first[0] == again[0] == 200 and first[1]["prompt_id"] == again[1]["prompt_id"] == fixed,
          "the same prompt_id and prompt twice: one job")
    other = copy.deepcopy(good)
    other[latent]["inputs"]["height"] = 48
    refused(None, "invalid_prompt_id", body={"prompt": other, "prompt_id": fixed})
    wait_history(base, fixed)  # out of the way of the cancels below
    status, _ = call(base, "/view?filename=..%2F..%2Fjobs.sqlite&type=output")
    check(status in (400, 403), f"/view refuses a path out of its folder ({status})")
    status, answer = call(base, f"/history/{uuid.uuid4()}")
    check(status == 200 and answer == {}, "/history of an unknown prompt is {}")
    status, answer = call(base, "/queue")
    check(status == 200 and set(answer) == {"queue_running", "queue_pending"}, "/queue's shape")

    # Cancel through ComfyUI's routes: a queued prompt deleted, a running one interrupted.
    slow = copy.deepcopy(good)
    for node in slow.values():
        if node["class_type"] == "PrimitiveInt" and node["inputs"]["value"] in (4, 2):
            node["inputs"]["value"] = {4: 40, 2: 20}[node["inputs"]["value"]]
    _, running = call(base, "/prompt", {"prompt": slow})
    _, pending = call(base, "/prompt", {"prompt": slow})
    status, queue = call(base, "/queue")
    ids = [item[1] for item in queue["queue_running"] + queue["queue_pending"]]
    check(running["prompt_id"] in ids and pending["prompt_id"] in ids, "/queue lists both, item[1] the prompt id")
    call(base, "/queue", {"delete": [pending["prompt_id"]]})
    deadline = time.monotonic() + 120
    while call(base, "/queue")[1]["queue_running"] == [] and time.monotonic() < deadline:
        time.sleep(0.2)
    call(base, "/interrupt", {})
    for prompt_id in (running["prompt_id"], pending["prompt_id"]):
        entry = wait_history(base, prompt_id)
        check(entry["status"]["status_str"] == "error" and not entry["status"]["completed"],
              f"{prompt_id[:8]} ended without output ({entry['status']['messages'][-1][0]})")
    _, job = call(base, f"/v1/jobs/{pending['prompt_id']}")
    check(job["state"] == "cancelled", f"a deleted prompt is a cancelled Reel job ({job['state']})")


def keys(args, data_dir):
    print("with API keys:")
    from websockets.sync.client import connect
    server = Server(args, "tiny:t2v-a14b", data_dir, keys=[KEY]).start()
    try:
        status, _ = call(server.base, "/prompt", {"prompt": {}})
        check(status == 401, f"POST /prompt without a key: {status}")
        status, answer = call(server.base, "/prompt", {"prompt": {}}, key=KEY)
        check(status == 400, f"with the key, on to validation: {status}")
        try:
            with connect(f"ws://127.0.0.1:{server.port}/ws?clientId=x"):
                raise AssertionError("the socket opened without a key")
        except Exception as e:
            check("401" in str(e), f"/ws without a key is refused: {e}")
        with connect(f"ws://127.0.0.1:{server.port}/ws?clientId=x",
                     additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
            check(json.loads(ws.recv(timeout=30))["type"] == "status", "/ws with a bearer header")
        with connect(f"ws://127.0.0.1:{server.port}/ws?clientId=x&token={KEY}") as ws:
            check(json.loads(ws.recv(timeout=30))["type"] == "status", "/ws with ?token=")
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reel", default=str(ROOT / ".build" / "debug" / "reel"))
    parser.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"))
    args = parser.parse_args()
    # absolute(), not resolve(): .venv/bin/python is a link, and its target is not the venv.
    args.reel, args.python = pathlib.Path(args.reel).absolute(), pathlib.Path(args.python).absolute()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="reel-comfy-") as tmp:
        tmp = pathlib.Path(tmp)
        for name in ("t2v", "i2v", "ti2v", "kill", "keys"):
            (tmp / name).mkdir()
        servers = []
        write_loras(tmp / "t2v", ["wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors",
                                  "wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors"], "t2v-a14b")
        write_loras(tmp / "i2v", ["wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors",
                                  "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors"], "i2v-a14b")
        try:
            t2v = Server(args, "tiny:t2v-a14b", tmp / "t2v").start()
            servers.append(t2v)
            print("the official templates:")
            run_template(t2v, "video_wan2_2_14B_t2v")
            run_lightning(t2v, "video_wan2_2_14B_t2v")
            clients(t2v)
            errors(t2v)
            t2v.stop()
            i2v = Server(args, "tiny:i2v-a14b", tmp / "i2v").start()
            servers.append(i2v)
            for name in ("video_wan2_2_14B_i2v_input_image.jpg", "video_wan2_2_14B_flf2v_start_image.png",
                         "video_wan2_2_14B_flf2v_end_image.png"):
                check(upload(i2v.base, name, png())["name"] == name, f"/upload/image {name}")
            check(upload(i2v.base, "input-18.jpg", png())["name"] == "input-18.jpg", "/upload/image input-18.jpg")
            run_template(i2v, "video_wan2_2_14B_i2v")
            run_template(i2v, "video_wan2_2_14B_flf2v")
            run_lightning(i2v, "video_wan2_2_14B_i2v")
            i2v.stop()
            ti2v = Server(args, "tiny", tmp / "ti2v").start()
            servers.append(ti2v)
            run_template(ti2v, "video_wan2_2_5B_ti2v")
            ti2v.stop()
            survives_kill(args, tmp / "kill")
            keys(args, tmp / "keys")
        except BaseException:
            for name in ("t2v", "i2v", "ti2v", "kill", "keys"):
                log = tmp / name / "server.log"
                if log.exists():
                    print(f"--- {name} server log (tail) ---\n" + log.read_text()[-2500:])
            raise
        finally:
            for server in servers:
                server.stop()
    print(f"comfy: all passed in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
