#!/usr/bin/env python3
"""Browser test of the web page: a real `reel serve` (tiny model, CPU) and a real headless Chromium.

    python3 e2e/web/test_web.py [--reel .build/debug/reel] [--python .venv/bin/python]

Checks: submitting a prompt ends with a video that plays; an image picked (by keyboard, then by file) shows its
preview and size, switches the size to auto and is sent with the job (its id, the fit); a file that is no image shows
the server's refusal and queues nothing; a CSV with one bad row shows that row's error and
queues nothing; the language switch shows Chinese and is remembered;
behind a proxy that demands an API key, the page asks for one and sends it. Screenshots go to test-artifacts/web/.
"""
import argparse
import hashlib
import http.server
import json
import math
import os
import pathlib
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import zlib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from cdp import CDP  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "web"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


def wait_until(check, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def start_server(args, data_dir):
    port = free_port()
    env = dict(os.environ, REEL_PYTHON=str(args.python), REEL_ENGINE=str(ROOT / "engine"), OMP_NUM_THREADS="1")
    log = open(data_dir / "server.log", "wb")
    process = subprocess.Popen(
        [str(args.reel), "serve", "--port", str(port), "--data-dir", str(data_dir), "--devices", "cpu",
         "--model", "tiny"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def ready():
        if process.poll() is not None:
            raise RuntimeError("reel serve exited:\n" + (data_dir / "server.log").read_text()[-3000:])
        try:
            return get(base + "/readyz")[0] == 200
        except urllib.error.HTTPError:
            return False

    wait_until(ready, 300, "reel serve to be ready")
    return process, base


def start_browser(profile):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise RuntimeError("chromium is not installed: apt-get install -y chromium")
    process = subprocess.Popen(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
         "--autoplay-policy=no-user-gesture-required", "--remote-debugging-port=0",
         f"--user-data-dir={profile}", "--window-size=1280,1000", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    port_file = profile / "DevToolsActivePort"
    wait_until(lambda: port_file.exists() and port_file.read_text().strip(), 60, "Chromium's DevTools port")
    port = int(port_file.read_text().split()[0])
    targets = json.loads(get(f"http://127.0.0.1:{port}/json/list")[1])
    page = next(t for t in targets if t["type"] == "page")
    browser = CDP(page["webSocketDebuggerUrl"])
    browser.send("Page.enable")
    browser.send("Runtime.enable")
    browser.send("Log.enable")
    browser.send("Emulation.setDeviceMetricsOverride", width=1280, height=1000, deviceScaleFactor=1, mobile=False)
    return process, browser


def page_errors(browser):
    """JavaScript exceptions, console errors and CSP violations the page has reported so far."""
    errors = []
    for event in browser.events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.exceptionThrown":
            errors.append(params["exceptionDetails"].get("exception", {}).get("description") or str(params))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
        # Network errors are expected (the atomic batch check answers 400); CSP violations are not.
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error" and \
                params["entry"].get("source") != "network":
            errors.append(params["entry"]["text"])
    return errors


def open_page(browser, base):
    browser.send("Page.navigate", url=base + "/")
    browser.wait_for("document.readyState === 'complete' && document.body && document.body.dataset.ready === 'true'",
                     30, "the page to load")
    browser.wait_for("document.querySelectorAll('#style option').length > 1", 30, "the styles")


def test_submit_prompt_plays_video(browser, base):
    open_page(browser, base)
    browser.eval("""(() => {
      const set = (id, value) => { const el = document.getElementById(id); el.value = value;
        el.dispatchEvent(new Event('input', { bubbles: true })); };
      set('prompt', 'a red fox trotting through snow');
      set('style', 'cinematic');
      set('size', 'custom');
      set('width', 64); set('height', 64); set('seconds', 0.2); set('steps', 2); set('guidance', 5);
    })()""")
    preview = browser.eval("document.getElementById('final-prompt').textContent")
    assert "a red fox trotting through snow" in preview and preview != "a red fox trotting through snow", preview
    assert browser.eval("document.getElementById('custom-size').hidden") is False
    browser.eval("document.getElementById('dice').click()")
    assert browser.eval("document.getElementById('seed').value") != ""
    browser.eval("document.querySelector('#job-form button[type=submit]').click()")
    browser.wait_for("document.getElementById('submit-message').textContent.includes('job_')"
                     " || document.getElementById('submit-message').className.includes('error')", 20, "the job")
    message = browser.eval("document.getElementById('submit-message').textContent")
    assert "error" not in browser.eval("document.getElementById('submit-message').className"), message
    browser.wait_for("document.querySelector('#queue tbody tr') !== null", 20, "the job in the queue")
    browser.wait_for("""(() => { const v = document.querySelector('#gallery video');
      return v && v.readyState >= 2 && v.duration > 0; })()""", 240, "a playable video in the gallery")
    played = browser.eval("""(async () => { const v = document.querySelector('#gallery video');
      await v.play(); await new Promise((r) => setTimeout(r, 400));
      return { readyState: v.readyState, duration: v.duration, width: v.videoWidth, height: v.videoHeight,
               error: v.error && v.error.message }; })()""")
    assert played["error"] is None and played["width"] == 64 and played["height"] == 64, played
    assert browser.eval("document.querySelector('#queue tbody tr').dataset.state") == "succeeded"
    assert browser.eval("document.querySelector('#gallery .card a').href").endswith("/video")
    assert browser.eval("document.querySelectorAll('#workers tbody tr').length") >= 1
    browser.screenshot(ARTIFACTS / "1-video.png")


def write_lora(path, dim=32, ffn=64, blocks=2, rank=4):
    """A kohya-layout LoRA for the tiny models as a safetensors file (float32, small seeded values), written with
    the standard library so the test needs no tensor library."""
    import random
    rng = random.Random(5)
    tensors = {}
    for block in range(blocks):
        for layer, (out_dim, in_dim) in {"self_attn.q": (dim, dim), "cross_attn.v": (dim, dim),
                                         "ffn.0": (ffn, dim)}.items():
            name = f"diffusion_model.blocks.{block}.{layer}"
            tensors[name + ".lora_down.weight"] = ([rank, in_dim], [rng.uniform(-0.1, 0.1) for _ in range(rank * in_dim)])
            tensors[name + ".lora_up.weight"] = ([out_dim, rank], [rng.uniform(-0.1, 0.1) for _ in range(out_dim * rank)])
            tensors[name + ".alpha"] = ([], [float(rank)])
    header, body, offset = {}, b"", 0
    for name, (shape, values) in sorted(tensors.items()):
        data = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        body += data
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(text)) + text + body)


def test_lora_picker(browser, base, data_dir):
    """The picker lists the library's LoRAs for this model; a job sent with one records it by content, and the
    server's refusal of an expert the model lacks is shown."""
    open_page(browser, base)
    browser.wait_for("!document.getElementById('lora-add').hidden", 30, "the LoRA library")
    browser.eval("""(() => {
      const set = (id, value) => { const el = document.getElementById(id); el.value = value;
        el.dispatchEvent(new Event('input', { bubbles: true })); };
      set('prompt', 'a lantern in the rain'); set('style', ''); set('size', 'custom');
      set('width', 64); set('height', 64); set('seconds', 0.2); set('steps', 2); set('guidance', 5);
      document.getElementById('lora-add').click();
      const row = document.querySelector('#lora-rows .lora-row');
      row.querySelector('.lora-name').value = 'tiny_detail';
      row.querySelector('.lora-scale').value = '0.5';
      row.querySelector('.lora-expert').value = 'high';
    })()""")
    options = browser.eval("[...document.querySelectorAll('#lora-rows .lora-name option')].map((o) => o.value)")
    assert options == ["tiny_detail"], f"only the LoRA this model takes is offered: {options}"
    before = job_count(base)
    browser.eval("document.querySelector('#job-form button[type=submit]').click()")
    browser.wait_for("document.getElementById('submit-message').className.includes('error')", 20, "the refusal")
    message = browser.eval("document.getElementById('submit-message').textContent")
    assert "one transformer" in message and message.startswith("loras"), message
    assert job_count(base) == before, "a refused job queues nothing"
    browser.eval("""(() => { document.querySelector('#lora-rows .lora-expert').value = 'both';
      const message = document.getElementById('submit-message'); message.textContent = ''; message.className = 'message';
    })()""")
    browser.eval("document.querySelector('#job-form button[type=submit]').click()")
    browser.wait_for("document.getElementById('submit-message').textContent.includes('job_')"
                     " || document.getElementById('submit-message').className.includes('error')", 20, "the job")
    text = browser.eval("document.getElementById('submit-message').textContent")
    assert "job_" in text, text
    job_id = re.search(r"job_[0-9A-Za-z]+", text).group(0)
    status, body = get(f"{base}/v1/jobs/{job_id}")
    loras = json.loads(body)["spec"]["loras"]
    digest = hashlib.sha256((data_dir / "loras" / "tiny_detail.safetensors").read_bytes()).hexdigest()
    assert loras == [{"name": "tiny_detail", "sha256": digest, "scale": 0.5, "expert": "both"}], loras
    wait_until(lambda: json.loads(get(f"{base}/v1/jobs/{job_id}")[1])["state"] in ("succeeded", "failed"), 240,
               "the job with a LoRA to finish")
    job = json.loads(get(f"{base}/v1/jobs/{job_id}")[1])
    assert job["state"] == "succeeded", job
    browser.wait_for(f"document.querySelector('#gallery .card[data-job=\"{job_id}\"]') !== null", 30, "its video card")
    shown = browser.eval(f"""(() => {{ const card = document.querySelector('#gallery .card[data-job="{job_id}"]');
      const terms = [...card.querySelectorAll('dt')].map((dt) => dt.textContent);
      const at = terms.indexOf('loras');
      return at < 0 ? `no loras among ${{terms}}` : card.querySelectorAll('dd')[at].textContent; }})()""")
    assert shown == "tiny_detail:0.5", shown
    browser.screenshot(ARTIFACTS / "7-lora.png")


def write_png(path, width, height):
    """An RGB PNG of a left-to-right gradient (written with zlib, so the test needs no imaging library)."""
    row = b"\x00" + b"".join(bytes((255 * x // width, 96, 255 - 255 * x // width)) for x in range(width))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))
    return path.read_bytes()


# TI2V-5B's presets (the tiny model's architecture) and VideoPresets.nearest: the preset whose aspect ratio is
# nearest the image's, compared as logarithms in steps of 5 %, the one with more pixels among equals.
TI2V_PRESETS = [("720p", 1280, 704), ("720p-portrait", 704, 1280), ("540p", 960, 544), ("540p-portrait", 544, 960),
                ("square", 704, 704), ("small", 512, 288)]


def nearest_preset(width, height):
    aspect = math.log(width / height)
    return min(TI2V_PRESETS, key=lambda p: (int(abs(math.log(p[1] / p[2]) - aspect) / 0.05), -p[1] * p[2]))


def job_count(base):
    return len(json.loads(get(base + "/v1/jobs?limit=100")[1])["data"])


def set_file(browser, selector, path):
    document = browser.send("DOM.getDocument")
    node = browser.send("DOM.querySelector", nodeId=document["root"]["nodeId"], selector=selector)
    browser.send("DOM.setFileInputFiles", files=[str(path)], nodeId=node["nodeId"])


def test_image_to_video_form(browser, base, data_dir):
    open_page(browser, base)
    browser.eval("""(() => {
      const set = (id, value) => { const el = document.getElementById(id); el.value = value;
        el.dispatchEvent(new Event('input', { bubbles: true })); };
      set('prompt', 'the product turning slowly on a table'); set('size', 'square');
      set('seconds', 0.2); set('steps', 2);
    })()""")
    assert browser.eval("document.getElementById('image-chosen').hidden") is True
    assert browser.eval("[...document.getElementById('size').options].some((o) => o.value === 'auto')") is False
    # The picker works from the keyboard: Enter on the focused (visually hidden) input opens the file chooser.
    browser.send("Page.setInterceptFileChooserDialog", enabled=True)
    try:
        browser.eval("document.getElementById('image-file').focus()")
        assert browser.eval("document.activeElement.id") == "image-file"
        label = browser.eval("document.getElementById('image-file').labels[0].textContent.trim()")
        assert label == "Choose an image…", label
        browser.events.clear()
        for kind in ("keyDown", "keyUp"):
            browser.send("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter", windowsVirtualKeyCode=13,
                         **({"text": "\r"} if kind == "keyDown" else {}))
        deadline = time.monotonic() + 10
        while not any(e["method"] == "Page.fileChooserOpened" for e in browser.events):
            assert time.monotonic() < deadline, "Enter on the image input opened no file chooser"
            browser.eval("1")
            time.sleep(0.1)
    finally:
        browser.send("Page.setInterceptFileChooserDialog", enabled=False)

    png = data_dir / "product.png"
    sha256 = hashlib.sha256(write_png(png, 300, 100)).hexdigest()
    set_file(browser, "#image-file", png)
    browser.wait_for("""(() => { const img = document.getElementById('image-preview');
      return !document.getElementById('image-chosen').hidden && img.complete && img.naturalWidth > 0; })()""",
                     20, "the image's preview")
    preview = browser.eval("""(() => { const img = document.getElementById('image-preview');
      return { src: img.src, width: img.naturalWidth, height: img.naturalHeight, alt: img.alt,
               size: document.getElementById('image-size').textContent,
               name: document.getElementById('image-name').textContent,
               message: document.getElementById('image-message').textContent,
               sizeSelect: document.getElementById('size').value,
               autoLabel: document.getElementById('size').selectedOptions[0].textContent }; })()""")
    assert preview["src"].startswith("blob:") and (preview["width"], preview["height"]) == (300, 100), preview
    assert preview["size"] == "300 × 100 px" and preview["name"] == "product.png" and preview["message"] == "", preview
    assert "product.png" in preview["alt"], preview
    assert preview["sizeSelect"] == "auto" and preview["autoLabel"] == "auto (from the image)", preview
    browser.eval("(() => { const s = document.getElementById('fit'); s.value = 'contain';"
                 " s.dispatchEvent(new Event('input', { bubbles: true })); })()")
    browser.screenshot(ARTIFACTS / "5-image.png")
    # On a narrow screen the form still fits its section.
    browser.send("Emulation.setDeviceMetricsOverride", width=390, height=900, deviceScaleFactor=1, mobile=False)
    try:
        narrow = browser.eval("""(() => { const box = (id) => document.getElementById(id).getBoundingClientRect();
          const form = document.getElementById('job-form');
          return { overflow: form.scrollWidth - form.clientWidth, formRight: box('job-form').right,
                   imageRight: box('image-preview').right, fieldsetRight: box('image-drop').right,
                   viewport: window.innerWidth }; })()""")
        assert narrow["overflow"] <= 1, narrow
        assert max(narrow["formRight"], narrow["imageRight"], narrow["fieldsetRight"]) <= narrow["viewport"], narrow
        browser.screenshot(ARTIFACTS / "6-image-narrow.png")
    finally:
        browser.send("Emulation.setDeviceMetricsOverride", width=1280, height=1000, deviceScaleFactor=1, mobile=False)

    browser.eval("document.querySelector('#job-form button[type=submit]').click()")
    browser.wait_for("document.getElementById('submit-message').textContent.includes('job_')"
                     " || document.getElementById('submit-message').className.includes('error')", 20, "the job")
    message = browser.eval("document.getElementById('submit-message').textContent")
    assert "error" not in browser.eval("document.getElementById('submit-message').className"), message
    job_id = next(word for word in message.split() if word.startswith("job_"))
    job = json.loads(get(f"{base}/v1/jobs/{job_id}")[1])
    name, width, height = nearest_preset(300, 100)
    spec = job["spec"]
    assert spec["image"] == f"img_{sha256}", spec
    assert spec["fit"] == "contain", spec
    assert spec["size"] == f"{width}x{height}" and (spec["width"], spec["height"]) == (width, height), (name, spec)
    # The test needs the job queued, not its video: cancel it so it does not hold the CPU.
    urllib.request.urlopen(urllib.request.Request(f"{base}/v1/jobs/{job_id}", method="DELETE"), timeout=10).read()

    # Removing the image gives the size chosen before it back, and the auto option goes.
    browser.eval("document.getElementById('image-remove').click()")
    after = browser.eval("""({ hidden: document.getElementById('image-chosen').hidden,
      size: document.getElementById('size').value, focus: document.activeElement.id,
      auto: [...document.getElementById('size').options].some((o) => o.value === 'auto') })""")
    assert after == {"hidden": True, "size": "square", "focus": "image-file", "auto": False}, after


def test_image_that_is_no_image(browser, base, data_dir):
    before = job_count(base)
    # Dropped on the drop zone: a text file, which the page uploads as bytes for the server to judge.
    browser.eval("""(() => { const data = new DataTransfer();
      data.items.add(new File(['just some words, no picture'], 'notes.txt', { type: 'text/plain' }));
      const zone = document.getElementById('image-drop');
      zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: data, bubbles: true, cancelable: true }));
      zone.dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true })); })()""")
    browser.wait_for("document.getElementById('image-message').className.includes('error')", 20, "the refusal")
    shown = browser.eval("""({ message: document.getElementById('image-message').textContent,
      hidden: document.getElementById('image-chosen').hidden, size: document.getElementById('size').value,
      submit: document.getElementById('submit-button').disabled })""")
    assert shown["message"] == "notes.txt: not a PNG, JPEG or WebP image", shown
    assert shown["hidden"] is True and shown["size"] != "auto" and shown["submit"] is False, shown
    browser.screenshot(ARTIFACTS / "7-image-error.png")
    # The same from the file picker.
    text = data_dir / "readme.md"
    text.write_text("still no picture\n")
    set_file(browser, "#image-file", text)
    browser.wait_for("document.getElementById('image-message').textContent === "
                     "'readme.md: not a PNG, JPEG or WebP image'", 20, "the refusal of the picked file")
    assert job_count(base) == before, "a refused image queued a job"


def test_csv_with_a_bad_row(browser, base, data_dir):
    before = len(json.loads(get(base + "/v1/jobs")[1])["data"])
    csv = data_dir / "prompts.csv"
    csv.write_bytes('\ufeffprompt,size,seconds,steps\r\n"a lighthouse, at ""dusk""",64x64,0.2,2\r\n'
                    'a bad size,65x64,0.2,2\r\n一只小猫,64x64,0.2,2\r\n'.encode())
    document = browser.send("DOM.getDocument")
    node = browser.send("DOM.querySelector", nodeId=document["root"]["nodeId"], selector="#csv-file")
    browser.send("DOM.setFileInputFiles", files=[str(csv)], nodeId=node["nodeId"])
    browser.wait_for("document.querySelectorAll('#csv-table tbody tr').length === 3", 10, "the CSV preview")
    assert browser.eval("document.querySelector('#csv-table tbody tr td:nth-child(2)').textContent") == \
        'a lighthouse, at "dusk"'
    browser.eval("document.getElementById('queue-all').click()")
    browser.wait_for("document.querySelector('#csv-table tr.bad') !== null", 20, "the bad row's error")
    bad = browser.eval("""[...document.querySelectorAll('#csv-table tr.bad')].map((tr) =>
      ({ row: tr.dataset.row, error: tr.lastElementChild.textContent }))""")
    assert len(bad) == 1 and bad[0]["row"] == "3" and bad[0]["error"].startswith("size"), bad
    assert browser.eval("!document.getElementById('queue-valid').hidden"), "no 'queue the valid rows' button"
    assert "2" in browser.eval("document.getElementById('queue-valid').textContent")
    after = len(json.loads(get(base + "/v1/jobs")[1])["data"])
    assert after == before, f"atomic check queued {after - before} jobs"
    browser.screenshot(ARTIFACTS / "2-csv-error.png")
    browser.eval("document.getElementById('queue-valid').click()")
    browser.wait_for("document.querySelector('#batches .batch progress') !== null", 20, "the batch's progress")
    assert len(json.loads(get(base + "/v1/jobs")[1])["data"]) == before + 2


def test_language_switch(browser, base):
    browser.eval("(() => { const s = document.getElementById('lang'); s.value = 'zh';"
                 " s.dispatchEvent(new Event('change')); })()")
    assert browser.eval("document.querySelector('#submit h2').textContent") == "新建视频"
    assert browser.eval("document.documentElement.lang") == "zh-CN"
    browser.screenshot(ARTIFACTS / "3-chinese.png")
    open_page(browser, base)  # remembered across a reload
    assert browser.eval("document.querySelector('#gallery-section h2').textContent") == "作品"
    assert browser.eval("localStorage.getItem('reel.lang')") == "zh"
    browser.eval("(() => { const s = document.getElementById('lang'); s.value = 'en';"
                 " s.dispatchEvent(new Event('change')); })()")
    assert browser.eval("document.querySelector('#submit h2').textContent") == "New video"


KEY = "web-test-key-0123456789"


def start_key_proxy(base):
    """A proxy in front of the server that answers 401 to API calls without `Authorization: Bearer KEY`, as a
    server with API keys does; the page itself loads without one."""

    class Proxy(http.server.BaseHTTPRequestHandler):
        def forward(self, method):
            public = self.path == "/" or self.path.startswith("/web/")
            if not public and self.headers.get("Authorization") != f"Bearer {KEY}":
                body = b'{"error":{"code":"unauthorized","message":"an API key is required","field":null}}'
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            length = int(self.headers.get("Content-Length") or 0)
            request = urllib.request.Request(base + self.path, data=self.rfile.read(length) if length else None,
                                             method=method)
            for name in ("Content-Type", "Authorization"):
                if self.headers.get(name):
                    request.add_header(name, self.headers[name])
            try:
                response = urllib.request.urlopen(request, timeout=30)
            except urllib.error.HTTPError as error:
                response = error
            body = response.read()
            self.send_response(response.status)
            for name, value in response.headers.items():
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self.forward("GET")

        def do_POST(self):
            self.forward("POST")

        def do_DELETE(self):
            self.forward("DELETE")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_api_key(browser, base):
    proxy, proxied = start_key_proxy(base)
    try:
        browser.send("Page.navigate", url=proxied + "/")
        browser.wait_for("document.getElementById('key-dialog') && document.getElementById('key-dialog').open",
                         20, "the API key form")
        browser.screenshot(ARTIFACTS / "4-api-key.png")
        browser.eval(f"document.getElementById('key-input').value = '{KEY}';"
                     " document.querySelector('#key-form button').click()")
        browser.wait_for("document.querySelectorAll('#style option').length > 1", 20, "the styles with the key")
        browser.wait_for("document.querySelectorAll('#queue tbody tr').length > 0", 20, "the jobs, polled with the key")
        assert browser.eval("sessionStorage.getItem('reel.apiKey')") == KEY
        assert browser.eval("document.getElementById('feed').dataset.i18n") == "polling"
        # The gallery's video is fetched with the key and played from a blob URL.
        browser.wait_for("""(() => { const v = document.querySelector('#gallery video');
          return v && v.src.startsWith('blob:') && v.readyState >= 2 && v.duration > 0; })()""", 30,
                         "the video through the key")
    finally:
        browser.eval("sessionStorage.clear()")
        proxy.shutdown()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reel", type=pathlib.Path, default=ROOT / ".build" / "debug" / "reel")
    parser.add_argument("--python", type=pathlib.Path, default=ROOT / ".venv" / "bin" / "python")
    args = parser.parse_args()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="reel-web-") as temp:
        temp = pathlib.Path(temp)
        data_dir = temp / "data"
        data_dir.mkdir()
        write_lora(data_dir / "loras" / "tiny_detail.safetensors")
        write_lora(data_dir / "loras" / "five_wide.safetensors", dim=3072, ffn=14336, blocks=1, rank=1)
        server = chromium = None
        try:
            server, base = start_server(args, data_dir)
            chromium, browser = start_browser(temp / "profile")
            tests = [
                ("submit a prompt and play the video", lambda: test_submit_prompt_plays_video(browser, base)),
                ("an image: preview, size auto, sent with the job",
                 lambda: test_image_to_video_form(browser, base, data_dir)),
                ("a file that is no image shows the server's refusal",
                 lambda: test_image_that_is_no_image(browser, base, data_dir)),
                ("a CSV with a bad row shows its error", lambda: test_csv_with_a_bad_row(browser, base, data_dir)),
                ("the language switch shows Chinese", lambda: test_language_switch(browser, base)),
                ("asks for an API key on 401 and sends it", lambda: test_api_key(browser, base)),
                ("the LoRA picker sends a LoRA and shows a refusal", lambda: test_lora_picker(browser, base, data_dir)),
            ]
            for name, test in tests:
                t0 = time.monotonic()
                try:
                    test()
                    errors = page_errors(browser)
                    assert not errors, f"the page reported errors: {errors}"
                    passed += 1
                    print(f"PASSED {name} ({time.monotonic() - t0:.1f} s)", flush=True)
                except Exception:
                    failed += 1
                    print(f"FAILED {name}\n{traceback.format_exc()}", flush=True)
                    try:
                        browser.screenshot(ARTIFACTS / f"failed-{passed + failed}.png")
                    except Exception:
                        pass
                browser.events.clear()
        except Exception:
            failed += 1
            print(f"FAILED setting up\n{traceback.format_exc()}", flush=True)
        finally:
            for process in (chromium, server):
                if process and process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            if failed and (data_dir / "server.log").exists():
                shutil.copy(data_dir / "server.log", ARTIFACTS / "server.log")
    print(f"{passed} passed, {failed} failed in {time.monotonic() - started:.1f} s (screenshots in {ARTIFACTS})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
