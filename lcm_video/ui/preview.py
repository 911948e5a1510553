"""The Stylise and Generate tabs' interactive preview: one frame (the source's first frame stylised, or the clip's
first frame generated) rendered again as the settings change, and a grid of variants of it (seeds, strengths or
prompts) to pick from.

A page's requests carry a serial number, taken as each arrives; one that a later request of the same page
overtakes (within ``DEBOUNCE``, or while another renders) is dropped before it renders and its frame is not shown,
so a run of changes renders the newest settings, never a queue of stale ones. The renderer (``Stylizer`` /
``ClipGenerator``) is kept between frames while only the prompt, strength or seed changes (the live engine's
changes: :func:`lcm_video.live.run.apply_change`), so such a frame costs one sample of one frame. With ``--quantize
int8`` a new renderer first runs the render's calibration pass (``pipelines/quantize.py``); a prompt, strength or
seed change keeps its int8 UNet, so the preview can differ from the render by the calibration's prompt."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np

from ..errors import UserError
from ..options import STYLIZE
from ..settings.parts import SETTINGS
from . import widgets
from .handlers import session_of, user_errors

KINDS = ("seeds", "strengths", "prompts")
MIN_VARIANTS, MAX_VARIANTS = 4, 16
CHANGES = ("prompt", "strength", "seed")
DEBOUNCE = 0.04  # seconds a change waits for a later one before it renders (typing keys come 15+ ms apart)


@dataclass
class _Kept:
    key: tuple
    renderer: Any
    models: Any
    cfg: Any
    frame: np.ndarray | None  # the source frame (stylise)
    emit: int  # generate: the window's frame count
    values: dict
    latents: Any = None  # the source frame's latents, encoded on the first render (a VAE encode a frame saved)


class Previews:
    """The previews of the pages: ``frame(session, serial, command, values)`` → uint8 (h, w, 3), or None when a
    later request of the session overtook it; ``variants(...)`` → [(frame, settings)]."""

    def __init__(self, app):
        self.app = app
        self.latest: dict[tuple[str, str], int] = {}
        self.kept: dict[str, _Kept] = {}
        self._lock = threading.Lock()  # one preview renders at a time (the kept renderers are not shared)

    def request(self, session: str, command: str) -> int:
        key = (session, command)
        self.latest[key] = serial = self.latest.get(key, 0) + 1
        return serial

    def stale(self, session: str, command: str, serial: int) -> bool:
        return self.latest.get((session, command), 0) != serial

    def frame(self, session: str, command: str, serial: int, values: dict[str, Any]) -> np.ndarray | None:
        time.sleep(DEBOUNCE)  # a change that comes within it overtakes this one
        with self._lock:
            if self.stale(session, command, serial):
                return None
            kept = self._renderer(command, values)
            out = self._render(kept, {k: kept.cfg.flat().get(k) for k in CHANGES})
        return None if self.stale(session, command, serial) else out

    def variants(self, command: str, values: dict[str, Any], kind: str, count, prompts: str) -> list[tuple]:
        """[(frame, {name: value})]: ``count`` (4–16) seeds from the page's, strengths across the option's range,
        or one per line of ``prompts``."""
        with self._lock:
            kept = self._renderer(command, values)
            base = {k: kept.cfg.flat().get(k) for k in CHANGES}
            picks = [{**base, **c} for c in _choices(command, base, kind, count, prompts)]
            if _batchable(kept, picks):
                return list(zip(self._batched(kept, picks), picks, strict=True))
            return [(self._render(kept, pick), pick) for pick in picks]

    def _batched(self, kept: _Kept, picks: list[dict[str, Any]]) -> list[np.ndarray]:
        """Seed or prompt variants of a still frame as one UNet batch (the toy's 16: 4 calls of batch 16 instead of
        64 of batch 1, ~2x sooner): each variant's noise is its seed's frame-0 noise and its prompt its own, and the
        temporal options have nothing to act on in a still frame (blending and cross-frame attention off), so each
        is the one-frame render of its settings up to the batch's rounding (under a level on average)."""
        from dataclasses import replace

        from ..core.noise import FrameNoise
        from ..pipelines.window import WindowSampler

        cfg, n = kept.cfg, len(picks)
        still = replace(cfg, temporal=replace(cfg.temporal, blend=0.0, cross_frame="off"))
        prompts = {i: pick["prompt"] for i, pick in enumerate(picks)}
        sampler = WindowSampler(kept.models, still, prompts=prompts, strength=picks[0]["strength"], batch=n)
        latents = self._latents(kept)
        shape = tuple(latents.shape[1:])
        sampler.begin(shape)
        sampler.noise = _VariantNoise([FrameNoise(int(p["seed"]), shape, sampler.shared_noise, sampler.renoise)
                                       for p in picks])  # fmt: skip
        x0 = sampler.sample(latents.expand(n, -1, -1, -1).contiguous(), range(n), range(n), shape)
        return list(kept.renderer.codec.decode_frames(x0))

    def _latents(self, kept: _Kept):
        if kept.latents is None:
            kept.latents = kept.renderer.codec.encode_frames(kept.frame[None])
        return kept.latents

    def _renderer(self, command: str, values: dict[str, Any]) -> _Kept:
        values = dict(values)
        source = values.pop("video", None)
        if command == STYLIZE and not source:
            raise UserError("no source video: upload one first")
        cfg = self.app.config(command, values, preview=True)
        flat = cfg.flat()
        key = (command, source, tuple((k, repr(v)) for k, v in flat.items() if k not in CHANGES))
        kept = self.kept.get(command)
        if kept is not None and kept.key == key:
            kept.cfg = cfg
            return kept
        models = self.app.models(cfg.model)
        out = self.app.out / "preview.mp4"  # checked, never written
        if command == STYLIZE:
            from ..pipelines.prepare import prepare_stylize
            from ..pipelines.quantize import quantize_unet
            from ..pipelines.video_to_video import Stylizer, calibration
            from ..video.reader import FrameReader

            prep = prepare_stylize(source, out, cfg)
            reader = FrameReader(prep.info, prep.size)
            try:
                frame = reader.read([prep.plan.sources[0]])[0]
            finally:
                reader.close()
            quantize_unet(models, cfg, calibration(models, cfg, prep), key)  # --quantize int8: calibrated as rendered
            renderer = Stylizer(models, cfg, batch=1, prompts=cfg.prompt.prompt, size=prep.size)
            kept = _Kept(key, renderer, models, cfg, frame, 1, {})
        else:
            from ..pipelines.prepare import prepare_generate
            from ..pipelines.quantize import quantize_unet
            from ..pipelines.text_to_video import ClipGenerator, calibration
            from ..pipelines.window import window_layout

            prep = prepare_generate(out, cfg)
            emit = min(window_layout(models, cfg, len(prep.plan)).size, len(prep.plan))
            quantize_unet(models, cfg, calibration(models, cfg, prep, emit), key)  # --quantize int8: as rendered
            renderer = ClipGenerator(models, cfg, prep.size, cfg.prompt.prompt, prep.control)
            kept = _Kept(key, renderer, models, cfg, None, emit, {})
        kept.values = {k: flat.get(k) for k in CHANGES}
        self.kept[command] = kept
        return kept

    def _render(self, kept: _Kept, settings: dict[str, Any]) -> np.ndarray:
        from ..live.run import apply_change

        sampler = kept.renderer.sampler
        for key, value in settings.items():
            if value is None or value == kept.values.get(key):
                continue
            apply_change(sampler, key, value)
            kept.values[key] = value
        sampler.reset()  # a still frame: no temporal state carried from the last one
        if kept.frame is not None:
            return kept.renderer.window(kept.frame[None], range(0, 1), latents=self._latents(kept))[0]
        return kept.renderer.window(range(0, kept.emit), range(0, 1))[0]


class _VariantNoise:
    """``FrameNoise.window``'s interface over variants: step k's ε is each variant's frame-0 ε, stacked (n, c, h, w)."""

    def __init__(self, sources: list):
        self.sources = sources

    def window(self, frames, device):
        windows = [source.window([0], device) for source in self.sources]
        return _Stacked(windows)


class _Stacked:
    def __init__(self, windows: list):
        self.windows = windows

    def __getitem__(self, k: int):
        import torch

        return torch.cat([w[k] for w in self.windows])


def _batchable(kept: _Kept, picks: list[dict[str, Any]]) -> bool:
    """Whether ``picks`` can render as one batch: a still source frame (stylise), one strength, the torch backend
    (OpenVINO's UNet is compiled for its batch: a new one would convert for minutes), no ControlNet (its maps per
    frame go through the renderer)."""
    m = kept.cfg.model
    return (
        kept.frame is not None
        and len({p["strength"] for p in picks}) == 1
        and m.backend == "torch"
        and not kept.cfg.control.control
    )


def _choices(command: str, base: dict[str, Any], kind: str, count, prompts: str) -> list[dict[str, Any]]:
    if kind not in KINDS:
        raise UserError(f"variations of {kind!r}: pick one of {', '.join(KINDS)}")
    if kind == "prompts":
        lines = [s.strip() for s in (prompts or "").splitlines() if s.strip()]
        if not MIN_VARIANTS // 2 <= len(lines) <= MAX_VARIANTS:
            raise UserError(f"prompt variations: write 2–{MAX_VARIANTS} prompts, one per line")
        return [{"prompt": p} for p in lines]
    n = int(count or 0)
    if not MIN_VARIANTS <= n <= MAX_VARIANTS:
        raise UserError(f"variations: {MIN_VARIANTS}–{MAX_VARIANTS} of them, not {n}")
    if kind == "seeds":
        seed = int(base.get("seed") or 0)
        return [{"seed": (seed + i) % (2**31)} for i in range(n)]
    if command != STYLIZE:
        raise UserError("strength variations are for the Stylise tab (generate starts from noise)")
    opt = SETTINGS["strength"]
    lo, hi = max(opt.lo or 0.0, 0.1), opt.hi or 1.0
    return [{"strength": round(lo + (hi - lo) * i / (n - 1), 3)} for i in range(n)]


LIVE_CHANGES = ("prompt", "negative_prompt", "strength", "seed", "steps", "guidance", "scheduler", "control",
                "canny_low", "canny_high", "model", "width", "height")  # fmt: skip


def preview_events(command: str, app, made: dict[str, Any], inputs: dict[str, Any], kwargs: dict[str, Any]):
    """The preview frame re-rendered on every change of the settings that shape it (debounced: a request overtaken
    by a later one while it waits is dropped, so only the newest settings render), and the Variations grid, whose
    pick fills the settings."""
    frame, grid, picks = made["frame"], made["grid"], made["picks"]

    def render(request: gr.Request, **values):
        session = session_of(request)
        serial = app.previews.request(session, command)
        if command == STYLIZE and not values.get("video"):
            return gr.skip()
        with user_errors():
            out = app.previews.frame(session, command, serial, values)
        return gr.skip() if out is None else out

    render = widgets.optional_uploads(render, command)  # ``--style-image`` may be left out
    triggers = [inputs[n] for n in LIVE_CHANGES if n in inputs] + ([kwargs["video"]] if "video" in kwargs else [])
    for component in triggers:
        # no concurrency limit: every change registers at once, so the ones overtaken while waiting are dropped
        component.change(render, inputs_kwargs=kwargs, outputs=frame, concurrency_id=f"{command}-frame",
                         concurrency_limit=None, show_progress="hidden", api_visibility="private")  # fmt: skip

    def vary(kind, count, prompts, **values):
        with user_errors():
            got = app.previews.variants(command, values, kind, count, prompts)
        name = _varied(kind)
        return [(img, f"{name} {pick[name]}") for img, pick in got], [pick for _, pick in got]

    vary = widgets.optional_uploads(vary, command)
    made["variations"].click(vary, inputs_kwargs=dict(kwargs, kind=made["kind"], count=made["count"],
                             prompts=made["prompts"]), outputs=[grid, picks], api_name=f"{command}_variations",
                             concurrency_id=f"{command}-variations", concurrency_limit=1)  # fmt: skip
    shown = [n for n in ("prompt", "strength", "seed") if n in inputs]

    def pick(choices: list[dict], evt: gr.SelectData):
        chosen = choices[evt.index] if choices and evt.index is not None else {}
        return [chosen.get(n, gr.skip()) if chosen.get(n) is not None else gr.skip() for n in shown]

    grid.select(pick, inputs=picks, outputs=[inputs[n] for n in shown], api_visibility="private")


def _varied(kind: str) -> str:
    return {"seeds": "seed", "strengths": "strength", "prompts": "prompt"}[kind]


__all__ = ["KINDS", "Previews", "preview_events"]
