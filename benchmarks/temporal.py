"""Motion-compensated temporal consistency, measured: ``--warp`` (and the other temporal options) on toy-world clips
with each kind of motion, stylised by the trained ``toy`` model, graded under two optical flow estimators.

    python scripts/bench_temporal.py quality [--size 128] [--frames 24] [--strengths 0.4,0.6] [--blends 0.2,0.5]
                                             [--pixel-blends 0,0.5] [--settings none,flow,...] [--out FILE.json]
    python scripts/bench_temporal.py cost [--size 512] [--frames 8] [--repeat 2] [--out FILE.json]
    python scripts/bench_temporal.py flows [--size 128] [--frames 24] [--out FILE.json]
    python scripts/bench_temporal.py parts [--sizes 256,512,1024] [--frames 12] [--out FILE.json]
    python scripts/bench_temporal.py experiments [--size 128] [--frames 24] [--variants LIST] [--pixel-blend 0.5]
                                                 [--out FILE.json]

quality: the clips of ``lcm_video.video.synthetic.motion_clip`` (pan, zoom, crossing, cut, still; lossless H.264),
each stylised with ``--model toy`` for every strength x blend x pixel blend x setting, then ``lcm-video eval``
against the source with DIS and with Farneback flow: warp error (both), tOF, flicker, PSNR and SSIM; warp error under
the clip's true motion (``motion_flow``: no estimator at all); and, per clip and setting, the ratio of each warp error
to ``--warp none`` at the same strength, blend and pixel blend. A still clip also reports whether all frames came out
identical.

experiments: variants that were measured and not kept, run by patching the pipeline in this process (pan, zoom and
crossing; strength 0.6, blend 0.5, ``--pixel-blend``): ``oracle`` blends along the clip's true motion instead of
DIS's (what a perfect flow would give), ``bicubic`` resamples the previous x0 bicubically, ``unblended`` is ``none``
with no blending at all (``--blend 0 --pixel-blend 0``), ``pixel-warp`` samples the previous x0 at pixel resolution
along the pixel flow and pools back to cells, ``unblended-occluded`` leaves a cell's occluded share unblended (instead
of in place), ``flow+cross+fusion`` adds StreamV2V's feature fusion to ``--warp flow --cross-frame anchor+prev``
(each token of a self-attention output pulled toward its nearest token of the previous frame's), ``noise-moved``
moves the shared noise with the true motion by whole latent cells
(on the crossing, only the square's noise, with the square), ``noise-integral`` moves it with a warp that keeps it
Gaussian (each cell split into 8 x 8 sub-cells of conditional white noise, splatted along the true motion, summed
over sqrt(count); pan and zoom), each with ``--warp none`` and ``flow``; ``consistent`` is no render but ``none``'s
first frame moved along the true motion: a perfectly consistent video, each grader's floor. ``--variants a,b`` runs
only those (and ``none``). Ratios to ``--warp none`` as in quality; on the crossing, how far the output square's right
edge is behind the source's (``square_lag_px``, every fourth frame).

flows: each estimator's mean end-point error (pixels, where the true motion is defined) against the clips' true
motion, how much of the true motion it sees (its flow projected on the true motion's direction, over the true motion's
length, where that is over 0.3 px: 1 when it sees all of it), and its time per flow: how far each grader and
``--warp flow``'s own flow can be trusted on these clips.

parts: the CPU time per frame of what ``--warp flow`` adds, alone, on one thread: ``latent_motion`` (DIS both ways,
the checks, the latent grid) and ``fuse_frame`` (``--pixel-blend``: the previous frame moved along the flow and
blended), on a panning clip at each size.

cost: stylise with random weights of SD1.5's shapes (``models.tiny.sd15_components``) on a panning clip, every
setting against ``none``, same process, interleaved ``--repeat`` times (the fastest run counts); seconds per frame
and the ratio.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from lcm_video.metrics import evaluate  # noqa: E402
from lcm_video.video.synthetic import (  # noqa: E402
    MOTION_CLIPS,
    MOTION_PROMPT,
    frames_clip,
    motion_clip,
    motion_flow,
)

SETTINGS = {
    "none": {"warp": "none"},
    "flow": {"warp": "flow"},
    "cross": {"warp": "none", "cross_frame": "anchor+prev"},  # alone: flow is the default
    "flow+cross": {"warp": "flow", "cross_frame": "anchor+prev"},
    "flow+own-noise": {"warp": "flow", "shared_noise": 0.0},  # every frame's noise its own
}


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def _pairs(kind: str, frames: int):
    """Frame pairs (k, k + 1) whose true motion is defined (all but the one across ``cut``'s cut)."""
    return [k for k in range(frames - 1) if not (kind == "cut" and k + 1 == frames // 2)]


def true_warp_error(video: np.ndarray, kind: str, clip: np.ndarray) -> float:
    """``metrics.evaluate``'s warp error of uint8 (n, h, w, 3) ``video`` under ``clip``'s true motion."""
    from lcm_video.temporal.flow import warp_image

    errs = []
    for k in _pairs(kind, len(clip)):
        fw, valid = motion_flow(kind, clip, k)
        a, b = video[k].astype(np.float32) / 255, video[k + 1].astype(np.float32) / 255
        sq = ((a - warp_image(b, fw)) ** 2).mean(-1)
        errs.append(float((sq * valid).sum() / max(valid.sum(), 1.0)))
    return float(np.mean(errs))


def square_lag(video: np.ndarray, clip: np.ndarray) -> list[float]:
    """How far the red square's right edge in uint8 (n, h, w, 3) ``video`` is behind the source ``clip``'s, in
    pixels, every fourth frame from frame 4 (negative: ahead). An edge is the last column with over 10 red pixels."""

    def edge(frame: np.ndarray) -> int:
        red = (frame[..., 0] > 170) & (frame[..., 1] < 90) & (frame[..., 2] < 90)
        cols = np.flatnonzero(red.sum(0) > 10)
        return int(cols.max()) if cols.size else -1

    return [float(edge(clip[k]) - edge(video[k])) for k in range(4, len(clip), 4)]


def flows(args) -> list[dict]:
    from lcm_video.temporal.flow import FlowEstimator

    rows = []
    for kind in MOTION_CLIPS:
        clip = motion_clip(kind, args.size, args.frames)
        for method in ("dis", "farneback"):
            est, errs, seen, seconds = FlowEstimator(method), [], [], 0.0
            for k in _pairs(kind, len(clip)):
                fw, valid = motion_flow(kind, clip, k)
                t0 = time.perf_counter()
                got = est(clip[k], clip[k + 1])
                seconds += time.perf_counter() - t0
                err = np.sqrt(((got - fw) ** 2).sum(-1))
                errs.append(float((err * valid).sum() / max(valid.sum(), 1.0)))
                # How much of the true motion the estimate has, along its direction (1: all of it).
                norm2 = (fw**2).sum(-1)
                moving = (valid > 0) & (norm2 > 0.3**2)
                if moving.any():
                    seen.append(float(((got * fw).sum(-1)[moving] / norm2[moving]).mean()))
            ms = seconds / len(errs) * 1000
            row = {"clip": kind, "flow": method, "size": args.size, "epe_px": float(np.mean(errs)), "ms": ms}
            row["motion_seen"] = float(np.mean(seen)) if seen else None
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def experiments(args) -> list[dict]:
    import decord
    import torch
    import torch.nn.functional as F

    import lcm_video.core.noise as noise_mod
    import lcm_video.pipelines.video_to_video as v2v
    import lcm_video.temporal.attention as att
    import lcm_video.temporal.blend as blend_mod
    from lcm_video import load_models, stylize
    from lcm_video.temporal.flow import LatentMotion
    from lcm_video.toy import world as toy

    models = load_models("toy", device="cpu")
    warp0, motion0, eps0 = blend_mod.warp_latent, v2v.latent_motion, noise_mod.FrameNoise.frame_eps
    pull0 = blend_mod.pull_along
    state: dict = {}

    def oracle_motion(prev, cur, factor, estimator):
        clip = state["clip"]
        k = int(np.argmin([np.abs(f.astype(np.float32) - cur).mean() for f in clip]))
        bw, valid = motion_flow(state["kind"], clip, k, backward=True)
        h, w = cur.shape[0] // factor, cur.shape[1] // factor
        cells = bw.reshape(h, factor, w, factor, 2).mean((1, 3)) / factor
        share = valid.reshape(h, factor, w, factor).mean((1, 3))
        flow = torch.from_numpy(np.ascontiguousarray(cells.transpose(2, 0, 1)))
        return LatentMotion(flow, torch.from_numpy(np.ascontiguousarray(share))[None], False, bw, valid > 0)

    def bicubic(x, flow):
        if not flow.any():
            return x
        c, h, w = x.shape
        ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
        grid = torch.stack([(xs + flow[0]) / max(1, w - 1) * 2 - 1, (ys + flow[1]) / max(1, h - 1) * 2 - 1], -1)
        out = F.grid_sample(x[None].float(), grid[None], mode="bicubic", padding_mode="border", align_corners=True)
        return out[0].to(x.dtype)

    def moved(xs, ys, h, w, frame, back=False):
        # Where frame 0's content at latent cell (xs, ys) is in frame ``frame`` (``back``: where frame ``frame``'s
        # was in frame 0), for the pan and zoom of ``motion_clip`` (2 px right and 1 down, or 1.5 % less of the world
        # a frame; a cell is 8 px).
        if state["kind"] == "zoom":
            cy, cx, grow = (h - 1) / 2, (w - 1) / 2, 0.985 ** (frame if back else -frame)
            return cx + (xs - cx) * grow, cy + (ys - cy) * grow
        sign = 1 if back else -1
        return xs + sign * frame * 2 / 8, ys + sign * frame * 1 / 8

    def moved_eps(self, frame, step):
        e = eps0(self, frame, step)
        c, h, w = e.shape
        if state["kind"] == "crossing":
            # The square's noise travels with it by whole cells (3 px a frame); the still background keeps its own.
            red = np.array(toy.COLOURS["red"])
            k = len(state["clip"][frame]) // h
            square = torch.from_numpy((state["clip"][frame] == red).all(-1).reshape(h, k, w, k).mean((1, 3)) > 0.5)
            xs = torch.arange(w).expand(h, w)
            ix = torch.where(square, (xs - round(3 * frame / k)).clamp(0, w - 1), xs)
            return e[:, torch.arange(h)[:, None].expand(h, w), ix]
        if state["kind"] not in ("zoom", "pan"):
            return e
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        sx, sy = moved(xs, ys, h, w, frame, back=True)
        ix = torch.from_numpy(np.clip(np.round(sx).astype(np.int64), 0, w - 1))
        iy = torch.from_numpy(np.clip(np.round(sy).astype(np.int64), 0, h - 1))
        return e[:, iy, ix]

    def integral_eps(self, frame, step, k=8):
        # "How I Warped Your Noise" (Chang et al. 2024) by forward splatting: each latent cell of frame 0's noise is
        # split into k x k sub-cells whose sum / k is the cell (conditional white noise); each sub-cell goes to the
        # cell of frame ``frame`` its content lands in (true motion); a cell's noise is the sum of what landed in it
        # over sqrt(count). Disjoint subsets of such sub-cells sum to independent N(0, count): every cell stays N(0, 1)
        # and independent of the others, however the content moved; cells nothing landed in get fresh noise.
        e0 = eps0(self, 0, step)
        if state["kind"] not in ("zoom", "pan") or frame == 0:
            return e0
        c, h, w = e0.shape
        gen = torch.Generator().manual_seed(1000 + step)
        z = torch.randn(c, h, k, w, k, generator=gen)
        sub = e0[:, :, None, :, None] / k + z - z.mean((2, 4), keepdim=True)
        u = (torch.arange(w * k, dtype=torch.float64) + 0.5) / k - 0.5  # sub-cell centres in cell units
        ys0, xs0 = torch.meshgrid(u, u, indexing="ij")
        xf, yf = moved(xs0, ys0, h, w, frame)
        ix, iy = torch.round(xf).long(), torch.round(yf).long()
        inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
        dest = (iy * w + ix)[inside]
        vals = sub.reshape(c, h * k, w * k)[:, inside]
        total = torch.zeros(c, h * w, dtype=torch.float32).index_add_(1, dest, vals)
        count = torch.zeros(h * w, dtype=torch.float32).index_add_(0, dest, torch.ones(dest.numel()))
        fresh = torch.randn(c, h * w, generator=torch.Generator().manual_seed(2000 + 31 * frame + step))
        out = torch.where(count > 0, total / count.clamp(min=1).sqrt(), fresh)
        return out.reshape(c, h, w)

    def pixel_pull(x0, before, m, beta):
        # ``before`` sampled at pixel resolution along the pixel flow (each cell's vector over its k x k pixels, so
        # zero flow is exact), the occluded pixels in place, pooled back to cells: a cell on an object's edge takes
        # each part from where it came instead of moving by the cell's mean flow.
        if m.cut:
            return x0
        c, h, w = before.shape
        k = m.pixel_flow.shape[0] // h
        up = before[None].float().repeat_interleave(k, 2).repeat_interleave(k, 3)
        flow = np.ascontiguousarray(m.pixel_flow[: h * k, : w * k].transpose(2, 0, 1))
        moved = warp0(up[0], torch.from_numpy(flow))[None]  # warp_latent on the pixel grid: the flow is in its units
        valid = torch.from_numpy(m.pixel_valid[: h * k, : w * k].astype(np.float32))[None, None]
        target = F.avg_pool2d(valid * moved + (1 - valid) * up, k)[0].to(x0.dtype)
        return torch.lerp(x0, target, beta)

    def unblended_occluded(x0, before, m, beta):
        # The occluded share of a cell keeps the frame's own x0 instead of blending in place.
        if m.cut:
            return x0
        share = m.valid.to(x0.device, x0.dtype)
        return x0 + beta * share * (warp0(before, m.flow) - x0)

    attn_call0, attn_init0 = att.CrossFrameAttnProcessor.__call__, att.CrossFrameState.__init__
    attn_end0, attn_reset0 = att.CrossFrameState.end_window, att.CrossFrameState.reset
    fused_share: list[float] = []

    def fusing_call(self, attn, hidden_states, *a, **kw):
        # StreamV2V's feature fusion, on top of --cross-frame anchor+prev: each token of a frame's self-attention
        # output is pulled (0.8) toward its most similar token (cosine) of the previous frame's output at the same
        # step and layer, where that similarity is at least 0.98. The previous frame's output is carried between
        # windows as the hidden states are.
        out = attn_call0(self, attn, hidden_states, *a, **kw)
        s = self.state
        g = s.groups
        bf, tokens, dim = out.shape
        o = out.view(g, bf // g, tokens, dim)
        key = (s.step, self.layer)
        s._next_last_out[key] = o[:, min(s.carry, s.real - 1)].detach().clone()
        carried = s.last_out.get(key) if s.frames and s.last_frame == s.frames[0] - 1 else None
        prev = torch.cat([o[:, :1] if carried is None else carried[:, None], o[:, :-1]], 1)
        best, idx = (F.normalize(o, dim=-1) @ F.normalize(prev, dim=-1).transpose(-1, -2)).max(-1)
        hit = best >= 0.98
        if carried is None:
            hit[:, 0] = False
        fused_share.append(float(hit.float().mean()))
        match = torch.gather(prev, 2, idx[..., None].expand(-1, -1, -1, dim))
        return torch.lerp(o, torch.where(hit[..., None], match, o), 0.8).reshape(bf, tokens, dim)

    def fusing_end(self):
        nxt = self._next_last_out
        attn_end0(self)
        if nxt:
            self.last_out, self._next_last_out = nxt, {}

    def fusing_reset(self):
        attn_reset0(self)
        self.last_out, self._next_last_out = {}, {}

    def fusing_init(self, mode):
        attn_init0(self, mode)
        self.last_out, self._next_last_out = {}, {}

    variants = {
        "none": ({"warp": "none"}, {}),
        "flow": ({"warp": "flow"}, {}),
        "unblended": ({"warp": "none", "blend": 0.0, "pixel_blend": 0.0}, {}),
        "oracle": ({"warp": "flow"}, {"motion": oracle_motion}),
        "bicubic": ({"warp": "flow"}, {"warp": bicubic}),
        "flow+cross": ({"warp": "flow", "cross_frame": "anchor+prev"}, {}),
        "flow+cross+fusion": ({"warp": "flow", "cross_frame": "anchor+prev"}, {"fusion": True}),
        "pixel-warp": ({"warp": "flow"}, {"pull": pixel_pull}),
        "unblended-occluded": ({"warp": "flow"}, {"pull": unblended_occluded}),
        "noise-moved": ({"warp": "none"}, {"eps": moved_eps}),
        "noise-moved+flow": ({"warp": "flow"}, {"eps": moved_eps}),
        "noise-integral": ({"warp": "none"}, {"eps": integral_eps}),
        "noise-integral+flow": ({"warp": "flow"}, {"eps": integral_eps}),
        "consistent": (None, {}),  # not a render: `none`'s first frame moved along the true motion
    }

    def consistent(kind, clip, first):
        """uint8 (n, h, w, 3): ``first`` moved along the clip's true motion, each frame resampled once (the motion
        composed on coordinates, which are smooth, so no blur builds up): a video perfectly consistent along the
        true motion, with the output's own texture; what each grader gives it is its floor."""
        from lcm_video.temporal.flow import warp_image

        h, w = first.shape[:2]
        grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)), -1)
        coords, out = grid.copy(), [first]
        for k in range(len(clip) - 1):
            bw, _ = motion_flow(kind, clip, k + 1, backward=True)
            coords = warp_image(coords, bw)
            moved = warp_image(first.astype(np.float32), coords - grid)
            out.append(np.clip(np.rint(moved), 0, 255).astype(np.uint8))
        return np.stack(out)

    rows, none_frames = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("pan", "zoom", "crossing"):
            clip = motion_clip(kind, args.size, args.frames)
            state.update(kind=kind, clip=clip)
            src = frames_clip(Path(tmp) / f"{kind}.mp4", clip, fps=24)
            base = None
            for name, (setting, patch) in variants.items():
                if args.variants and name not in ("none", *args.variants.split(",")):
                    continue
                if kind == "crossing" and name.startswith("noise-integral"):
                    continue  # the warp above is written for a camera's motion
                out = Path(tmp) / f"{kind}_{name}.mp4"
                if setting is None:
                    frames_clip(out, consistent(kind, clip, none_frames[0]), fps=24)
                else:
                    blend_mod.warp_latent = patch.get("warp", warp0)
                    v2v.latent_motion = patch.get("motion", motion0)
                    noise_mod.FrameNoise.frame_eps = patch.get("eps", eps0)
                    blend_mod.pull_along = patch.get("pull", pull0)
                    if patch.get("fusion"):
                        att.CrossFrameAttnProcessor.__call__ = fusing_call
                        att.CrossFrameState.__init__ = fusing_init
                        att.CrossFrameState.end_window, att.CrossFrameState.reset = fusing_end, fusing_reset
                    fused_share.clear()
                    try:
                        kw = {"strength": 0.6, "blend": 0.5, "pixel_blend": args.pixel_blend, "quiet": True}
                        stylize(src, out, MOTION_PROMPT, models=models, codec="libx264rgb", crf=0, **(kw | setting))
                    finally:
                        blend_mod.warp_latent, v2v.latent_motion, noise_mod.FrameNoise.frame_eps = warp0, motion0, eps0
                        blend_mod.pull_along = pull0
                        att.CrossFrameAttnProcessor.__call__, att.CrossFrameState.__init__ = attn_call0, attn_init0
                        att.CrossFrameState.end_window, att.CrossFrameState.reset = attn_end0, attn_reset0
                vr = decord.VideoReader(str(out))
                got = vr.get_batch(list(range(len(vr)))).asnumpy()
                if name == "none":
                    none_frames = got
                row = {"clip": kind, "variant": name}
                dis = evaluate(out, src, flow="dis")
                row |= {"warp_dis": dis.warp_error, "tof": dis.tof, "psnr": dis.psnr}
                row |= {"warp_farneback": evaluate(out, src, flow="farneback").warp_error}
                row |= {"warp_true": true_warp_error(got, kind, clip)}
                if kind == "crossing":
                    row["square_lag_px"] = square_lag(got, clip)
                if fused_share:
                    row["fused_token_share"] = float(np.mean(fused_share))
                base = base or row
                for key in ("warp_dis", "warp_farneback", "warp_true"):
                    row[f"{key}_vs_none"] = row[key] / base[key]
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def quality(args) -> list[dict]:
    from lcm_video import load_models, stylize
    from lcm_video.video.reader import FrameReader, probe

    models = load_models("toy", device="cpu")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = {}
        for kind in MOTION_CLIPS:
            clips[kind] = motion_clip(kind, args.size, args.frames)
            src = frames_clip(tmp / f"{kind}.mp4", clips[kind], fps=24)
            for strength in _floats(args.strengths):
                for blend, pixel in itertools.product(_floats(args.blends), _floats(args.pixel_blends)):
                    base = None
                    for name, setting in SETTINGS.items():
                        if args.settings and name not in args.settings.split(","):
                            continue
                        out = tmp / f"{kind}_{strength}_{blend}_{pixel}_{name}.mp4"
                        t0 = time.perf_counter()
                        stylize(
                            src,
                            out,
                            MOTION_PROMPT,
                            models=models,
                            strength=strength,
                            blend=blend,
                            pixel_blend=pixel,
                            quiet=True,
                            codec="libx264rgb",
                            crf=0,
                            **setting,
                        )
                        seconds = time.perf_counter() - t0
                        dis, farn = evaluate(out, src, flow="dis"), evaluate(out, src, flow="farneback")
                        row = {"clip": kind, "strength": strength, "blend": blend, "pixel_blend": pixel}
                        row["setting"] = name
                        row |= {"warp_dis": dis.warp_error, "warp_farneback": farn.warp_error, "tof": dis.tof}
                        row |= {"flicker": dis.flicker, "psnr": dis.psnr, "ssim": dis.ssim, "seconds": seconds}
                        info = probe(out)
                        frames = FrameReader(info, (info.width, info.height)).read(range(info.frames)).numpy()
                        row["warp_true"] = true_warp_error(frames, kind, clips[kind])
                        if kind == "still":
                            row["identical_frames"] = bool((frames == frames[:1]).all())
                        if name == "none":
                            base = row
                        for key in ("warp_dis", "warp_farneback", "warp_true", "tof"):
                            row[f"{key}_vs_none"] = row[key] / base[key] if base and base[key] else None
                        rows.append(row)
                        print(json.dumps(row), flush=True)
    return rows


def cost(args) -> list[dict]:
    import torch

    from lcm_video import stylize
    from lcm_video.models.container import Models
    from lcm_video.models.tiny import sd15_components

    sys.path.insert(0, str(ROOT / "scripts"))
    from benchmark import _models  # noqa: E402 - the speed benchmark's own SD1.5-shaped Models

    comps = sd15_components()
    models: Models = _models(comps, torch.device("cpu"), torch.float32)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = frames_clip(Path(tmp) / "pan.mp4", motion_clip("pan", args.size, args.frames), fps=24)
        times: dict[str, list[float]] = {name: [] for name in SETTINGS}
        for _ in range(args.repeat):
            for name, setting in SETTINGS.items():
                t0 = time.perf_counter()
                stylize(src, Path(tmp) / f"{name}.mp4", "a fox", models=models, quiet=True, **setting)
                times[name].append(time.perf_counter() - t0)
        for name, ts in times.items():
            row = {"setting": name, "size": args.size, "frames": args.frames, "seconds": min(ts)}
            row["s_per_frame"] = min(ts) / args.frames
            row["vs_none"] = min(ts) / min(times["none"])
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def parts(args) -> list[dict]:
    import cv2
    import torch

    from lcm_video.temporal.flow import FlowEstimator, fuse_frame, latent_motion

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    rows = []
    for size in (int(x) for x in args.sizes.split(",")):
        clip = motion_clip("pan", size, args.frames)
        est = FlowEstimator("dis")
        t0 = time.perf_counter()
        motions = [latent_motion(clip[k], clip[k + 1], 8, est) for k in range(len(clip) - 1)]
        flow_ms = (time.perf_counter() - t0) / len(motions) * 1000
        fused = clip[0].astype(np.float32)
        t0 = time.perf_counter()
        for k, m in enumerate(motions):
            fused = fuse_frame(clip[k + 1], fused, 0.5, m)
            np.rint(fused).clip(0, 255).astype(np.uint8)
        fuse_ms = (time.perf_counter() - t0) / len(motions) * 1000
        row = {"size": size, "latent_motion_ms": flow_ms, "fuse_frame_ms": fuse_ms}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path)
    sub = ap.add_subparsers(dest="case", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--size", type=int, default=128)
    q.add_argument("--frames", type=int, default=24)
    q.add_argument("--strengths", default="0.4,0.6")
    q.add_argument("--blends", default="0.2,0.5")
    q.add_argument("--pixel-blends", default="0.5")
    q.add_argument("--settings", default="", help=f"comma-separated, of {','.join(SETTINGS)}; all when empty")
    c = sub.add_parser("cost")
    c.add_argument("--size", type=int, default=512)
    c.add_argument("--frames", type=int, default=8)
    c.add_argument("--repeat", type=int, default=2)
    e = sub.add_parser("experiments")
    e.add_argument("--size", type=int, default=128)
    e.add_argument("--frames", type=int, default=24)
    e.add_argument("--variants", default="", help="comma-separated; all when empty (none always runs)")
    e.add_argument("--pixel-blend", type=float, default=0.5)
    t = sub.add_parser("parts")
    t.add_argument("--sizes", default="256,512,1024")
    t.add_argument("--frames", type=int, default=12)
    f = sub.add_parser("flows")
    f.add_argument("--size", type=int, default=128)
    f.add_argument("--frames", type=int, default=24)
    args = ap.parse_args()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)  # build/ is not in a fresh clone
    cases = {"quality": quality, "cost": cost, "flows": flows, "experiments": experiments, "parts": parts}
    rows = cases[args.case](args)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    if args.case == "quality":
        summary: dict = {}
        for r in rows:
            if r["setting"] != "none" and r["clip"] != "still" and r["warp_dis_vs_none"] is not None:
                name = f"{r['setting']} (blend {r['blend']:g}, pixel blend {r['pixel_blend']:g})"
                summary.setdefault(name, []).append(
                    (r["warp_dis_vs_none"], r["warp_farneback_vs_none"], r["warp_true_vs_none"])
                )
        for name, pairs in summary.items():
            a = np.array(pairs, dtype=float)
            print(
                f"{name}: warp error vs none, moving clips: DIS mean {a[:, 0].mean():.3f} max {a[:, 0].max():.3f}; "
                f"Farneback mean {a[:, 1].mean():.3f} max {a[:, 1].max():.3f}; "
                f"true motion mean {a[:, 2].mean():.3f} max {a[:, 2].max():.3f}"
            )


if __name__ == "__main__":
    main()
