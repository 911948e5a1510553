"""The web UI: its inputs are the options' declarations, its command lines parse back to the same config, and a
running ``lcm-video ui`` (toy model) serves stylise, generate, errors, cancel, queueing and a real browser."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

gr = pytest.importorskip("gradio", reason="the ui extra is not installed")

from lcm_video.cli.parser import build_parser  # noqa: E402
from lcm_video.errors import UserError  # noqa: E402
from lcm_video.models.presets import PRESETS  # noqa: E402
from lcm_video.options import GENERATE, STYLIZE  # noqa: E402
from lcm_video.settings.parts import SETTINGS  # noqa: E402
from lcm_video.settings.resolve import resolve  # noqa: E402
from lcm_video.ui import widgets  # noqa: E402
from lcm_video.ui.session import check_weights  # noqa: E402
from lcm_video.video.reader import probe  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "samples" / "clip.mp4"
STYLE_PNG = ROOT / "docs" / "control.png"  # any image: the toy model has no IP-Adapter
PROMPT = "a red circle on a white background"


# --------------------------------------------------------------------------------------------------------------------
# No server


@pytest.mark.parametrize("command", [STYLIZE, GENERATE])
def test_the_page_has_an_input_for_every_option(command):
    declared = {o.name for o in SETTINGS.values() if command in o.commands} - set(widgets.NOT_SHOWN)
    assert {o.name for o in widgets.shown(command)} == declared
    assert set(widgets.MAIN[command]) <= declared


@pytest.mark.parametrize("command", [STYLIZE, GENERATE])
def test_command_line_parses_back_to_the_same_config(command):
    values = {
        "prompt": "a fox's den, at night",
        "prompt_at": "4=a fox at dawn\n",
        "model": "toy",
        "steps": 3.0,  # gradio numbers come as floats
        "seed": 7,
        "guidance": "1.5",
        "fps": "30000/1001",
        "fast": True,
        "lora": "a/b.safetensors:0.5\nc/d",
        "width": "",
    }
    if command == STYLIZE:
        values.update(strength=0.7, audio=False, end="2.5", warp="flow", max_frames=12)
    else:
        values.update(frames=24)
    cfg = resolve(command, None, widgets.to_options(command, values))
    line = widgets.command_line(cfg, "my clip.mp4" if command == STYLIZE else None, "out.mp4")
    import shlex

    argv = shlex.split(line)
    assert argv[:2] == ["lcm-video", command]
    ns = build_parser().parse_args(argv[1:])
    again = resolve(command, None, {k: v for k, v in vars(ns).items() if k in SETTINGS})
    assert again == cfg
    from_yaml = resolve(command, None, __import__("yaml").safe_load(widgets.config_yaml(cfg)))
    assert from_yaml == cfg


def test_wide_ranges_get_a_number_box_and_generate_shows_its_motion_adapter(tmp_path):
    frames = widgets.component(SETTINGS["frames"], GENERATE)  # 1-100000: a slider could not be dragged to 16
    assert isinstance(frames, gr.Number) and frames.value == 16
    assert isinstance(widgets.component(SETTINGS["strength"], STYLIZE), gr.Slider)
    from lcm_video.ui.app import build_app

    for model, adapter in ((None, "animatelcm"), ("toy", "toy-motion"), ("tiny", "tiny")):
        demo = build_app(tmp_path / "out", model)
        shown = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "generate-motion_adapter"]
        assert len(shown) == 1 and shown[0].value == adapter


def test_the_page_may_not_name_local_files(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x")
    for options in ({"model": str(weights)}, {"lora": (f"{weights}:0.5",)}, {"vae": "../x"}, {"model": "/etc"}):
        with pytest.raises(UserError, match="presets and hub ids only"):
            check_weights(options, set())
    check_weights({"model": "toy", "lora": ("org/repo:0.5",), "motion_adapter": "tiny", "vae": "taesd"}, set())
    check_weights({"model": str(weights)}, {str(weights)})  # given at launch


@pytest.mark.parametrize("command", [STYLIZE, GENERATE])
def test_the_style_image_is_an_upload_and_the_adapter_a_weight_setting(command, tmp_path):
    box = widgets.component(SETTINGS["style_image"], command)
    assert isinstance(box, gr.Image) and box.type == "filepath" and box.sources == ["upload"]
    options = widgets.to_options(command, {"prompt": "x", "model": "tiny", "style_image": None, "style_scale": 0.6})
    assert "style_image" not in options  # nothing uploaded: not given
    adapter = tmp_path / "ip-adapter_sd15.safetensors"
    adapter.write_bytes(b"x")
    with pytest.raises(UserError, match="presets and hub ids only"):
        check_weights({"ip_adapter": str(adapter)}, set())
    check_weights({"ip_adapter": "sd15-plus"}, set())


# --------------------------------------------------------------------------------------------------------------------
# A running app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``lcm-video ui --model toy`` in a process of its own: (url, process, output folder)."""
    out = tmp_path_factory.mktemp("ui-out")
    port = _free_port()
    with open(out.parent / "ui.log", "w+") as log:
        env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
        command = [sys.executable, "-m", "lcm_video", "ui", "--model", "toy", "--out", str(out), "--port", str(port)]
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"lcm-video ui did not start:\n{log.read()[-3000:]}")
                time.sleep(0.5)
        # One line of ours names the address and --share (printed once launch returns, just after the page answers);
        # not Gradio's "set share=True in launch()".
        said, deadline = "", time.monotonic() + 60
        while f"serving on http://127.0.0.1:{port}" not in said and time.monotonic() < deadline:
            time.sleep(0.2)
            log.seek(0)
            said = log.read()
        assert f"serving on http://127.0.0.1:{port}" in said and "--share" in said and "share=True" not in said, said
        yield url, proc, out
        proc.terminate()
        proc.wait(30)


@pytest.fixture()
def client(server):
    from gradio_client import Client

    return Client(server[0], verbose=False)


def _table(frame: dict) -> dict[str, str]:
    """A metrics Dataframe as the API returns it ({"headers", "data"}) → {metric: value text}."""
    return {row[0]: row[1] for row in frame["data"]}


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.slow
def test_api_names_every_input_as_its_option(client):
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    for command in (STYLIZE, GENERATE):
        names = {p["parameter_name"] for p in api[f"/{command}"]["parameters"]}
        assert names == {o.name for o in widgets.shown(command)} | ({"video"} if command == STYLIZE else set())
        required = [p["parameter_name"] for p in api[f"/{command}"]["parameters"] if not p["parameter_has_default"]]
        assert required == (["video"] if command == STYLIZE else [])


@pytest.mark.slow
def test_stylize_and_generate_through_the_api(client, server):
    from gradio_client import handle_file

    res = client.predict(video=handle_file(str(CLIP)), prompt=PROMPT, max_frames=6, api_name="/stylize")
    video, status, metrics, plot, command, config = res[:6]
    assert probe(video).frames == 6 and (probe(video).width, probe(video).height) == (160, 120)
    table = _table(metrics)  # a table a person reads: 4 significant digits, not 17
    assert status.startswith("done:") and table["frames"] == "6" and float(table["psnr"]) > 0
    assert all(len(v.replace(".", "").replace("-", "").lstrip("0").split("e")[0]) <= 4 for v in table.values())
    assert len(plot["data"]) == 2 * 5  # warp error and flicker of each of the 5 frame pairs
    assert "--max-frames 6" in command and "--model toy" in command and "max_frames: 6" in config
    assert (server[2] / Path(video).name).is_file()  # the render is in the output folder, with its YAML
    assert (server[2] / Path(video).name).with_suffix(".yaml").is_file()

    res = client.predict(prompt="a yellow square on a blue background", frames=12, api_name="/generate")
    assert probe(res[0]).frames == 12 and (probe(res[0]).width, probe(res[0]).height) == (PRESETS["toy"].size,) * 2
    res = client.predict(prompt="a yellow square", frames=30, api_name="/generate_preview")
    assert probe(res[0]).frames == 8
    # an SDXL preset from the model dropdown (which lists every preset)
    res = client.predict(
        video=handle_file(str(CLIP)), prompt=PROMPT, model="tiny-sdxl", max_frames=2, api_name="/stylize"
    )
    assert probe(res[0]).frames == 2 and "--model tiny-sdxl" in res[4]


@pytest.mark.slow
def test_bad_input_is_the_clis_one_line_message(client, server):
    from gradio_client import handle_file

    before = _files(server[2])
    cases = [
        (dict(video=handle_file(str(CLIP)), prompt=PROMPT, start=3.0, end="1"), "--end (1 s) must be after --start"),
        (dict(video=handle_file(str(CLIP)), prompt=""), "no prompt"),
        (dict(video=handle_file(str(CLIP)), prompt=PROMPT, strength_at="x"), "--strength-at 'x' must be"),
        (dict(video=handle_file(str(CLIP)), prompt=PROMPT, model="/etc"), "presets and hub ids only"),
        (dict(video=handle_file(str(CLIP)), prompt=PROMPT, fps="fast"), "--fps expects a frame rate"),
        (
            dict(video=handle_file(str(CLIP)), prompt=PROMPT, style_image=handle_file(str(STYLE_PNG))),
            "has no IP-Adapter",
        ),
    ]
    for kwargs, message in cases:
        with pytest.raises(Exception) as err:
            client.predict(api_name="/stylize", **kwargs)
        text = str(err.value)
        assert message in text and "\n" not in text and "Traceback" not in text, text
    with pytest.raises(Exception, match="not a video, or truncated"):
        client.predict(video=handle_file(str(ROOT / "README.md")), prompt=PROMPT, api_name="/stylize")
    assert _files(server[2]) == before


@pytest.mark.slow
def test_cancel_stops_within_a_window_and_leaves_nothing(client, server):
    from gradio_client import handle_file

    before = _files(server[2])
    job = client.submit(video=handle_file(str(CLIP)), prompt=PROMPT, window=4, api_name="/stylize")
    deadline = time.monotonic() + 120
    while not any("render:" in str(o[1]) for o in job.outputs()):
        assert time.monotonic() < deadline and not job.done(), "no progress came"
        time.sleep(0.1)
    assert client.predict(api_name="/stylize_cancel") == "cancelling…"
    t0 = time.monotonic()
    final = job.result()
    assert final[0] is None and final[1].startswith("cancelled")
    assert time.monotonic() - t0 < 20  # one window of 4 frames at 160x120, not the other 80
    assert _files(server[2]) == before  # no video, no partial file, no YAML


@pytest.mark.slow
def test_two_clients_at_once_both_get_their_results(server):
    from gradio_client import Client, handle_file

    a, b = Client(server[0], verbose=False), Client(server[0], verbose=False)
    ja = a.submit(video=handle_file(str(CLIP)), prompt=PROMPT, max_frames=10, api_name="/stylize")
    jb = b.submit(prompt="a blue circle on a red background", frames=10, seed=3, api_name="/generate")
    ra, rb = ja.result(timeout=300), jb.result(timeout=300)
    assert probe(ra[0]).frames == 10 and probe(rb[0]).frames == 10
    assert ra[0] != rb[0]


@pytest.mark.slow
def test_memory_stays_flat_over_ten_renders(client, server):
    import psutil
    from gradio_client import handle_file

    proc = psutil.Process(server[1].pid)
    rss = []
    for seed in range(10):
        res = client.predict(video=handle_file(str(CLIP)), prompt=PROMPT, seed=seed, api_name="/stylize_preview")
        assert probe(res[0]).frames == 8
        rss.append(proc.memory_info().rss / 2**20)
    growth = max(rss[3:]) - rss[2]
    print(f"RSS after each render (MiB): {[round(r) for r in rss]}")
    assert growth < 64, f"RSS per render (MiB): {[round(r) for r in rss]}"


@pytest.mark.slow
def test_batch_and_evaluate_tabs(client, server):
    from gradio_client import handle_file

    before = _files(server[2])
    jobs = (
        "defaults: {model: toy, max_frames: 5}\n"
        "jobs:\n  - {name: a, mode: stylize, input: clip.mp4, output: a.mp4}\n"
        "  - {name: b, mode: generate, prompt: a red circle, frames: 6, output: b.mp4}\n"
        "defaults_prompt: x\n"
    )
    with pytest.raises(Exception, match="unknown top-level keys"):
        client.predict(jobs_text=jobs, videos_in=[handle_file(str(CLIP))], api_name="/batch")
    jobs = jobs.replace("defaults_prompt: x\n", "").replace("max_frames: 5", f"max_frames: 5, prompt: {PROMPT}")
    with pytest.raises(Exception, match="plain file name"):
        client.predict(jobs_text=jobs.replace("input: clip.mp4", "input: ../clip.mp4"),
                       videos_in=[handle_file(str(CLIP))], api_name="/batch")  # fmt: skip
    assert _files(server[2]) == before  # a refused job file leaves no folder behind
    status, report, files = client.predict(jobs_text=jobs, videos_in=[handle_file(str(CLIP))], api_name="/batch")
    assert "2/2 jobs done" in status
    assert sorted(probe(f).frames for f in files) == [5, 6]

    averages, plot = client.predict(video=handle_file(files[0]), result="", source=None, flow="dis", max_frames="",
                                    api_name="/evaluate")  # fmt: skip
    averages = {k: float(v) for k, v in _table(averages).items()}
    assert averages["frames"] in (5, 6)
    from lcm_video import evaluate

    here = evaluate(files[0], flow="dis")  # the tab reports the library's figures for the file, not its own
    assert averages["warp_error"] == pytest.approx(here.warp_error, rel=1e-3)
    assert averages["flicker"] == pytest.approx(here.flicker, rel=1e-3)
    pairs = plot["data"]
    assert len(pairs) == 2 * (int(averages["frames"]) - 1)
    made = str(Path(files[0]).relative_to(server[2])) if Path(files[0]).is_relative_to(server[2]) else None
    made = made or next(str(p.relative_to(server[2])) for p in server[2].rglob(Path(files[0]).name))
    again, _ = client.predict(video=None, result=made, source=None, flow="farneback", max_frames="3",
                              api_name="/evaluate")  # fmt: skip
    assert _table(again)["frames"] == "3"
    with pytest.raises(Exception, match="is not a result in the output folder"):
        client.predict(video=None, result="../../etc/passwd", source=None, flow="dis", max_frames="",
                       api_name="/evaluate")  # fmt: skip


def test_a_job_file_built_from_the_stylise_settings_is_valid(tmp_path):
    import yaml

    from lcm_video.batch.jobs import load_jobs
    from lcm_video.ui.app import App

    app = App(tmp_path / "out", model="toy")
    text, videos = app.batch_from({"video": str(CLIP), "prompt": PROMPT, "model": "toy", "strength": 0.6, "seed": 3})
    assert videos == [str(CLIP)]
    data = yaml.safe_load(text)
    assert data["defaults"] == {"prompt": PROMPT, "strength": 0.6, "seed": 3, "model": "toy"}
    (tmp_path / "jobs.yaml").write_text(text)
    shutil.copyfile(CLIP, tmp_path / CLIP.name)
    (job,) = load_jobs(tmp_path / "jobs.yaml", tmp_path / "renders")
    assert job.input == (tmp_path / CLIP.name).resolve() and job.cfg.sampling.strength == 0.6


# --------------------------------------------------------------------------------------------------------------------
# A real browser


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        reason = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("LCM_VIDEO_REQUIRE_BROWSER"):
            pytest.fail(reason + "; CI must run the browser test")
        print(f"skipping the browser test: {reason}", file=sys.stderr)
        pytest.skip(reason)
    return path


@pytest.mark.slow
def test_browser_stylise_and_generate_at_once(server, tmp_path):
    chromium = _chromium()
    from playwright.sync_api import expect, sync_playwright

    url, _, out = server
    shot = Path(os.environ.get("LCM_VIDEO_SCREENSHOT", tmp_path / "ui.png"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        one = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        two = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        for page in (one, two):
            page.goto(url)
            page.wait_for_selector("#stylize-run")

        one.locator("input[type=file]").first.set_input_files(str(CLIP))
        one.locator("#stylize-prompt textarea").fill(PROMPT)
        two.get_by_role("tab", name="Generate").click()
        two.locator("#generate-run").wait_for()
        two.locator("#generate-prompt textarea").fill("a yellow square on a blue background")
        expect(one.locator("#stylize-result")).to_be_visible()
        expect(one.locator("#stylize-cancel")).to_be_disabled()  # nothing runs: nothing to cancel
        expect(one.locator("#stylize-dice")).to_have_text("New seed")  # a label every browser can draw
        one.locator("#stylize-run").click()
        two.locator("#generate-run").click()

        expect(one.locator("#stylize-status")).to_contain_text("frames", timeout=120_000)  # live progress
        expect(one.locator("#stylize-cancel")).to_be_enabled()
        expect(one.locator("#stylize-result video")).to_have_count(1, timeout=300_000)
        expect(one.locator("#stylize-status")).to_contain_text("done:", timeout=60_000)
        expect(two.locator("#generate-result video")).to_have_count(1, timeout=300_000)
        expect(two.locator("#generate-status")).to_contain_text("done:", timeout=60_000)
        expect(one.locator("#stylize-cancel")).to_be_disabled(timeout=30_000)
        one.evaluate("window.scrollTo(0, 0)")
        one.screenshot(path=str(shot), full_page=False)
        browser.close()
    assert shot.stat().st_size > 10_000
    made = sorted(p.name for p in out.glob("*.mp4"))
    stylized = [n for n in made if n.startswith("stylize-")]
    assert stylized and probe(out / stylized[-1]).frames == probe(CLIP).frames
    assert any(n.startswith("generate-") for n in made)


def test_repeatable_options_with_choices_are_text_lines_that_parse():
    """--control takes TYPE[:SCALE] lines (a dropdown of the types could not hold a scale)."""
    box = widgets.component(SETTINGS["control"], STYLIZE)
    assert isinstance(box, gr.Textbox) and box.lines == 2
    options = widgets.to_options(STYLIZE, {"prompt": "x", "control": "canny:0.8\ntile\n"})
    cfg = resolve(STYLIZE, None, options)
    assert cfg.control.control == (("canny", 0.8), ("tile", 1.0))


def test_preview_drops_a_request_a_later_one_overtook_and_variants_are_checked(tmp_path):
    from lcm_video.ui.app import App
    from lcm_video.ui.preview import _choices

    app = App(tmp_path / "out", "toy")
    old = app.previews.request("page", STYLIZE)
    app.previews.request("page", STYLIZE)
    assert app.previews.frame("page", STYLIZE, old, {"prompt": PROMPT}) is None  # nothing loads, nothing renders
    assert _choices(STYLIZE, {"seed": 7}, "seeds", 4, "") == [{"seed": s} for s in (7, 8, 9, 10)]
    strengths = [c["strength"] for c in _choices(STYLIZE, {}, "strengths", 16, "")]
    assert len(strengths) == 16 and strengths == sorted(strengths) and strengths[-1] == SETTINGS["strength"].hi
    assert _choices(GENERATE, {}, "prompts", 0, "a fox\n\na hare\n") == [{"prompt": "a fox"}, {"prompt": "a hare"}]
    for args in (("seeds", 17, ""), ("seeds", 3, ""), ("prompts", 0, "one"), ("hues", 4, "")):
        with pytest.raises(UserError):
            _choices(STYLIZE, {"seed": 0}, *args)
    with pytest.raises(UserError, match="Stylise tab"):
        _choices(GENERATE, {}, "strengths", 4, "")


@pytest.mark.slow
def test_preview_frame_is_the_render_s_first_frame_and_variants_are_one_frame_renders(tmp_path):
    """The preview's frame (its source latents encoded once) is what a render's first frame is: exactly at the same
    UNet batch, within a level at the render's own batch. Seed and prompt variants, rendered as one batch, are each
    the one-frame render of their settings within a level."""

    from lcm_video.pipelines.video_to_video import Stylizer
    from lcm_video.ui.app import App

    app = App(tmp_path / "out", "toy")
    values = {"video": str(CLIP), "prompt": PROMPT, "seed": 3, "model": "toy"}
    frames = [app.previews.frame("page", STYLIZE, app.previews.request("page", STYLIZE), values) for _ in range(2)]
    kept = app.previews.kept[STYLIZE]
    fresh = Stylizer(kept.models, kept.cfg, batch=1, prompts=PROMPT).window(kept.frame[None], range(0, 1))[0]
    render = Stylizer(kept.models, kept.cfg).window(kept.frame[None], range(0, 1))[0]  # the render's batch
    for frame in frames:
        np.testing.assert_array_equal(frame, fresh)
    assert np.abs(render.astype(int) - fresh).mean() < 1.0
    for kind, prompts in (("seeds", ""), ("prompts", "a blue square on a black background\na green circle")):
        got = app.previews.variants(STYLIZE, values, kind, 4, prompts)
        alone = [app.previews._render(kept, pick) for _, pick in got]
        for (frame, pick), one in zip(got, alone, strict=True):
            assert np.abs(frame.astype(int) - one).mean() < 1.0, pick
        assert np.abs(got[0][0].astype(int) - got[1][0]).mean() > 5  # the variants differ
    assert [pick["seed"] for _, pick in app.previews.variants(STYLIZE, values, "seeds", 4, "")] == [3, 4, 5, 6]


# The preview frame and Variations (issue 29): figures measured in the browser. The goals are 0.5 s p95 for a
# changed prompt's frame and 3 s for 16 variants on the toy; a shared, loaded CI box misses them by a little, so the
# bounds asserted are looser yet still fail on a broken debounce (stale renders queued: one 0.2 s render per key).
PREVIEW_P95_S = 1.5
GRID_S = 20.0  # 16 variants in one batch: 1.9 s in the browser on an idle 2-core box (one at a time: 4.1 s)

_WATCH = """sel => { window.__shown = []; const box = document.querySelector(sel); let last = null;
  new MutationObserver(() => { const img = box.querySelector('img'); const src = img && img.src;
    if (src && src !== last) { last = src; window.__shown.push(performance.now()); } })
  .observe(box, {subtree: true, childList: true, attributes: true}); }"""

_MEAN = """sel => new Promise(done => { const img = document.querySelector(sel);
  const c = document.createElement('canvas');
  const go = () => { c.width = img.naturalWidth; c.height = img.naturalHeight; const g = c.getContext('2d');
    g.drawImage(img, 0, 0); const d = g.getImageData(0, 0, c.width, c.height).data; const m = [0, 0, 0];
    for (let i = 0; i < d.length; i += 4) { m[0] += d[i]; m[1] += d[i + 1]; m[2] += d[i + 2]; }
    done(m.map(v => v / (d.length / 4))); };
  img.complete ? go() : img.onload = go; })"""


def _browser(p, *args):
    return p.chromium.launch(executable_path=_chromium(), headless=True, args=["--no-sandbox", *args])


@pytest.mark.slow
def test_browser_preview_follows_the_prompt_and_variations_fill_the_settings(server):
    from playwright.sync_api import expect, sync_playwright

    url = server[0]
    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.goto(url)
        page.wait_for_selector("#stylize-run")
        page.locator("#stylize-prompt textarea").fill(PROMPT)
        page.locator("input[type=file]").first.set_input_files(str(CLIP))
        expect(page.locator("#stylize-frame img")).to_have_count(1, timeout=120_000)  # the first loads the model
        page.evaluate(_WATCH, "#stylize-frame")
        took = []
        for i, prompt in enumerate(["a blue circle", "a green square", "a yellow star", "a red square"] * 2):
            time.sleep(0.4)
            n = page.evaluate("window.__shown.length")
            t0 = page.evaluate("performance.now()")
            page.locator("#stylize-prompt textarea").fill(f"{prompt} {i}")
            page.wait_for_function(f"window.__shown.length > {n}", timeout=30_000)
            took.append((page.evaluate("window.__shown[window.__shown.length - 1]") - t0) / 1000)
        took.sort()
        p50, p95 = took[len(took) // 2], took[min(len(took) - 1, int(0.95 * len(took)))]
        # typed key by key: only the last settings render (a queue of stale renders would take a render per key)
        box = page.locator("#stylize-prompt textarea")
        box.fill("")
        time.sleep(1.0)
        n = page.evaluate("window.__shown.length")
        box.press_sequentially("a blue circle on a white background", delay=15)
        t0 = page.evaluate("performance.now()")
        time.sleep(3.0)
        shown = page.evaluate("window.__shown").__len__() - n
        typed = (page.evaluate("window.__shown[window.__shown.length - 1]") - t0) / 1000
        # Variations: 16 seeds, then a pick fills the seed
        page.locator("#stylize-count input[type=number]").fill("16")
        page.locator("#stylize-count input[type=number]").press("Enter")
        t0 = time.monotonic()
        page.locator("#stylize-variations").click()
        expect(page.locator("#stylize-grid img")).to_have_count(16, timeout=60_000)
        grid = time.monotonic() - t0
        page.locator("#stylize-grid img").nth(5).click()
        expect(page.locator("#stylize-seed input[type=number]")).to_have_value("5", timeout=10_000)
        browser.close()
    print(f"preview: {[round(t, 2) for t in took]}; p50 {p50:.2f} s p95 {p95:.2f} s; typed: {shown} frames, "
          f"last {typed:.2f} s; grid {grid:.2f} s")  # fmt: skip
    assert p95 <= PREVIEW_P95_S, took
    assert typed <= PREVIEW_P95_S and shown <= 12, (typed, shown)  # 35 keys: a queue would show ~35, 7 s late
    assert grid <= GRID_S


def _wait_for_frames(page, n: int, timeout: float = 60.0) -> None:
    """Until the Live tab's status is a running line ("live: ... N frames ...") with N ≥ n."""
    import re

    deadline, text = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        text = page.locator("#live-status").inner_text()
        got = re.search(r"live: .*?(\d+) frames", text)
        if got and int(got.group(1)) >= n:
            return
        time.sleep(0.2)
    raise AssertionError(f"the Live tab did not show {n} frames in {timeout:.0f} s: {text!r}")


@pytest.mark.slow
def test_browser_live_tab_stylises_a_fake_camera_and_follows_the_prompt(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from lcm_video.video.ffmpeg import ffmpeg_exe

    url, _, out = server
    camera = tmp_path / "camera.y4m"  # Chromium's fake webcam plays this in a loop
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(CLIP), "-t", "2", "-vf", "scale=320:240",
                    "-pix_fmt", "yuv420p", str(camera)], check=True)  # fmt: skip
    fake = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={camera}"]  # fmt: skip
    with sync_playwright() as p:
        browser = _browser(p, *fake)
        page = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["camera"]).new_page()
        page.goto(url)
        page.get_by_role("tab", name="Live").click()
        page.locator("#live-prompt textarea").fill("a red circle on a white background")
        page.locator("#live-record input").check()
        page.locator("#live-start").click()
        expect(page.locator("#live-status")).to_contain_text("started")
        page.locator("#live-camera").get_by_text("Click to Access Webcam").click()
        page.locator("#live-camera .button-wrap button").first.click()  # stream
        expect(page.locator("#live-status")).to_contain_text("fps", timeout=120_000)
        _wait_for_frames(page, 5)
        expect(page.locator("#live-output img")).to_have_count(1)
        red = page.evaluate(_MEAN, "#live-output img")
        page.locator("#live-prompt textarea").fill("a blue square on a black background")
        time.sleep(4)  # a change shows from the next frame; frames come at ~2 fps on a loaded CPU
        blue = page.evaluate(_MEAN, "#live-output img")
        page.locator("#live-stop").click()
        expect(page.locator("#live-status")).to_contain_text("stopped:", timeout=30_000)
        line = page.locator("#live-status").inner_text()
        (recorded,) = sorted(out.glob("live-*.mp4"))
        # again, and the page closed without Stop: the run ends and its recording is finished all the same
        page.locator("#live-start").click()
        _wait_for_frames(page, 3)  # the new run's own line, not the last one's "stopped: N frames" still shown
        page.close()
        deadline = time.monotonic() + 90  # the heartbeat notices the closed page, the engine ends its frame
        while len(list(out.glob("live-*.mp4"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        browser.close()
    print(f"live tab: {line}; mean rgb {red} → {blue}")
    assert sum(abs(a - b) for a, b in zip(red, blue, strict=True)) > 30, (red, blue)
    assert probe(recorded).frames >= 5 and "recorded" in line
    (closed,) = set(out.glob("live-*.mp4")) - {recorded}
    assert probe(closed).frames >= 3
