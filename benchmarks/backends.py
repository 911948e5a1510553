"""Whole-process speed and memory of `lcm-video stylize` per backend and precision against the per-frame diffusers
loop a user would write, on several model shapes and sizes. Every case it runs is reported.

    python -m benchmarks.backends [--shapes small,mid,sd15] [--sizes 256,512] [--frames 12] [--out FILE.json]
                                  [--modes torch,openvino,openvino-bf16,openvino-fast] [--repeat 1]
    python -m benchmarks.backends --memory [--out FILE.json]
    python -m benchmarks.backends --unet-batch [--shapes ...] [--sizes ...] [--out FILE.json]
    python -m benchmarks.backends --agreement [--frames 24] [--out FILE.json]
    python -m benchmarks.backends --layout [--shapes ...] [--sizes ...] [--dtype float32] [--out FILE.json]
    python -m benchmarks.backends --ceiling [--shapes ...] [--sizes ...] [--frames 12] [--out FILE.json]
    python -m benchmarks.backends --int8 [--shapes toy,sd15] [--sizes 256] [--frames 16] [--out FILE.json]

--agreement: `lcm-video stylize --model toy` on the first frames of samples/clip.mp4 to PNG (no codec in between) per
backend and precision (torch / openvino, float32 / bfloat16), each against torch float32: mean and largest absolute
difference in levels of 255, and PSNR (``lcm_video.metrics.psnr``: 100 dB for identical frames). The trained toy
model, because random weights make output that ignores its input.

--unet-batch: the torch UNet alone (fp32, one step, random weights of each shape), seconds per frame at batch 1, 2,
4 and 12 on each size's latents, each batch timed after a warm-up call at that batch: what batching the UNet buys
on this CPU per shape and size.

--layout: the torch VAE's encoder and decoder and one UNet step alone (fp32, batch 1, random weights of each shape),
with weights and input in the default (contiguous) memory layout and in channels_last, each the faster of two timed
calls after a warm-up, interleaved: what oneDNN's channels-last convolutions buy on this CPU per shape and size, and
the largest difference in the outputs.

--ceiling: what each mode's model calls alone allow. Per shape and size, seconds per frame of every call a frame
costs (4 UNet steps, one VAE encode, one decode), timed alone (each the faster of two calls after a warm-up) as the
diffusers loop makes them (torch fp32, contiguous, batch 1) and as lcm-video makes them in each mode, with the
whole-process runs' shapes (UNet batch = the frames, up to the 16 of a window; VAE encode 1 and decode 2 frames a
call; OpenVINO's converted models from the same cache, so the same compiled models): the ratio of the two sums is
the most a whole process can gain in that mode as long as everything else (imports, loading, video reading and
writing; ours also computes optical flow) costs ours no less than it costs diffusers. A mode whose ceiling is under
a target cannot meet it on this CPU by work outside the model calls.

--int8: `--quantize int8` (issue 29) in process, on the trained toy at 128² (shape `toy`) and on each other shape's
random weights at each size, over a toy-world clip (``toy/video.py``, seeded, written as PNGs: no codec) of
``--frames`` frames, 4 steps. Per precision the OpenVINO models load once; the float UNet records its calls while
the render's first window runs (the library's own calibration pass, ``video_to_video.calibration``), then each
variant renders the clip twice in the library's window loop (``stylized_frames``: a warm-up, then one timed and
kept): the float UNet, and the int8 UNet quantised on those calls, its other layers at the precision's hint: in
float32 with each NNCF scheme (``models.openvino.INT8_SCHEMES``: ``hybrid``, ``full``), in bfloat16 with the
default one. Reported: NNCF's seconds (a fresh cache), the UNet call alone (the first recorded call, the faster of
two after a warm-up), seconds per frame of the render, and PSNR and mean absolute difference (levels of 255) of its
frames against the float32 UNet's (on random weights a check of the numbers only). On the toy in float32, the
default scheme is quantised a second time from scratch: ``same_frames_requantised`` says whether a fresh
quantisation renders the same frames.

--memory: peak RSS of `lcm-video stylize --model toy` rendering 30 and 300 frames of a 160x120 clip, per backend
(torch, openvino; the converted models cached by a first run): streaming means the ratio stays near 1.

Models: random weights (speed does not depend on them), saved as diffusers folders and loaded from disk by both sides:
  small  UNet 64/128/256/256, VAE 64/128/256/256 (half SD's widths)
  mid    UNet 128/256/512/512, SD1.5's VAE
  sd15   SD1.5's UNet (320/640/1280/1280) and VAE
  tiny   UNet and VAE 32/64/64/64 (to check the benchmark itself runs, in seconds)
each with an LCM w-embedding, a CLIP-L-sized text encoder, and a TAESD-shaped autoencoder for `--fast`.
Settings: 4 steps, strength 0.6, guidance 8 (the w-embedding, on both sides). Modes `torch` and `openvino` run the
default `--dtype auto` (bfloat16 on a CPU that computes it in hardware, since 2026-12-02; float32 before), the others
name their precision.

diffusers: a fresh Python process that loads `LatentConsistencyModelImg2ImgPipeline.from_pretrained(DIR)` and loops
over the frames (decord → pipe → imageio-ffmpeg), as its docs show; ours: `lcm-video stylize CLIP -o OUT --model DIR`
with the mode's flags. Wall seconds of the whole process (imports and loading included) and its peak RSS; for
OpenVINO the first run (which converts and caches) is reported apart from the later ones. Ratios are diffusers'
seconds over ours (above 1: ours is faster).

Every mode prints its rows as JSON lines and, with ``--out``, writes them with the machine and versions.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import LCM_VIDEO, ROOT, Rows, make_clip, repeat, run_child

SHAPES = {
    "small": ((64, 128, 256, 256), (64, 128, 256, 256)),
    "mid": ((128, 256, 512, 512), (128, 256, 512, 512)),
    "sd15": ((320, 640, 1280, 1280), (128, 256, 512, 512)),
    "tiny": ((32, 64, 64, 64), (32, 64, 64, 64)),
}
MODES = {  # "torch" and "openvino" leave --dtype at auto: bfloat16 on a CPU with it in hardware, else float32
    "torch": [],
    "torch-fp32": ["--dtype", "float32"],
    "openvino": ["--backend", "openvino"],
    "openvino-fp32": ["--backend", "openvino", "--dtype", "float32"],
    "openvino-bf16": ["--backend", "openvino", "--dtype", "bfloat16"],
    "torch-bf16": ["--dtype", "bfloat16"],
    "openvino-fast": ["--backend", "openvino", "--vae", "{dir}/taesd"],
    "openvino-bf16-fast": ["--backend", "openvino", "--dtype", "bfloat16", "--vae", "{dir}/taesd"],
}
PROMPT = "an oil painting of a harbour"
STEPS, STRENGTH, GUIDANCE = 4, 0.6, 8.0

DIFFUSERS_LOOP = """
import sys, numpy as np, torch, decord, imageio_ffmpeg
from PIL import Image
from diffusers import LatentConsistencyModelImg2ImgPipeline
model, clip, out, size, prompt = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
steps, strength, guidance = int(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8])
pipe = LatentConsistencyModelImg2ImgPipeline.from_pretrained(model, safety_checker=None, torch_dtype=torch.float32)
pipe.set_progress_bar_config(disable=True)
vr = decord.VideoReader(clip)
w = imageio_ffmpeg.write_frames(out, (size, size), fps=24, quality=None)
w.send(None)
for i in range(len(vr)):
    img = Image.fromarray(vr[i].asnumpy())
    res = pipe(prompt, image=img, num_inference_steps=steps, strength=strength, guidance_scale=guidance,
               output_type="np").images[0]
    w.send(np.ascontiguousarray((res * 255).round().astype(np.uint8)))
w.close()
"""


def save_models(shape: str, folder: Path) -> Path:
    """The shape's random-weight models as a diffusers LCM folder (with ``taesd/`` inside), built once, in a process
    of its own: a child forked from a parent holding the models would start with their pages in its peak RSS."""
    if not (folder / "model_index.json").is_file():
        code = f"from benchmarks.backends import build_models; build_models({shape!r}, {str(folder)!r})"
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    return folder


def build_models(shape: str, folder: str) -> None:
    """``save_models``' child: the shape's random weights saved as a diffusers folder."""
    from diffusers import LatentConsistencyModelImg2ImgPipeline

    from lcm_video.models.tiny import sd15_components

    unet_ch, vae_ch = SHAPES[shape]
    comps = sd15_components(unet_channels=unet_ch, vae_channels=vae_ch)
    keys = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
    pipe = LatentConsistencyModelImg2ImgPipeline(
        **{k: comps[k] for k in keys}, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    pipe.save_pretrained(folder)
    comps["taesd"].save_pretrained(Path(folder) / "taesd")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.backends", description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="small,mid,sd15", help=f"comma-separated, of {','.join(SHAPES)}")
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--modes", default="torch,openvino,openvino-bf16,openvino-fast", help=f"of {','.join(MODES)}")
    ap.add_argument("--repeat", type=int, default=1, help="interleaved runs of every side (the fastest counts)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lcm_video_bench_backends")
    ap.add_argument("--out", type=Path, help="write the rows, machine and versions as JSON here")
    ap.add_argument("--memory", action="store_true", help="30 vs 300 frames per backend instead")
    ap.add_argument("--unet-batch", action="store_true", help="the UNet alone at batch 1/2/4/12 instead")
    ap.add_argument("--agreement", action="store_true", help="each backend's frames against torch fp32 instead")
    ap.add_argument("--layout", action="store_true", help="VAE and UNet alone, contiguous vs channels_last, instead")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"), help="--layout's precision")
    ap.add_argument("--ceiling", action="store_true", help="each mode's model calls alone: the most it can gain")
    ap.add_argument("--int8", action="store_true", help="--quantize int8 against float32 and bfloat16 instead")
    return ap


def main(argv: list[str] | None = None) -> Rows:
    args = parser().parse_args(argv)
    args.work = args.work.resolve()  # children run in the repository
    modes = {"ceiling": ceiling, "layout": layout, "memory": memory, "agreement": agreement, "unet_batch": unet_batch,
             "int8": int8}  # fmt: skip
    what = next((name for name in modes if getattr(args, name)), "whole")
    rows = Rows(args.out, f"backends {what}")
    modes.get(what, whole)(args, rows)
    return rows


def whole(args, rows: Rows) -> None:
    """Whole processes: the diffusers loop and ``lcm-video stylize`` in each mode, per shape and size."""
    args.work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, LCM_VIDEO_CACHE=str(args.work / "cache"))
    for shape in args.shapes.split(","):
        folder = save_models(shape, args.work / shape)
        for size in map(int, args.sizes.split(",")):
            clip = make_clip(args.work / f"clip{size}.mp4", seconds=args.frames / 24, size=f"{size}x{size}", rate="24")
            out = args.work / "out.mp4"
            theirs = [sys.executable, "-c", DIFFUSERS_LOOP, str(folder), str(clip), str(out), str(size), PROMPT]
            theirs += [str(STEPS), str(STRENGTH), str(GUIDANCE)]
            ours = [*LCM_VIDEO, "stylize", str(clip), "-o", str(out), "-p", PROMPT, "--model", str(folder)]
            ours += ["--steps", str(STEPS), "--strength", str(STRENGTH), "--guidance", str(GUIDANCE), "--quiet"]
            modes = args.modes.split(",")
            first: dict[str, float] = {}
            best: dict[str, tuple[float, float]] = {}
            for mode in modes:  # the first OpenVINO run converts: timed apart, once
                if mode.startswith("openvino"):
                    flags = [f.format(dir=folder) for f in MODES[mode]]
                    first[mode] = run_child(ours + flags, env)[0]
            for _ in range(args.repeat):
                for who in ["diffusers", *modes]:
                    argv = theirs if who == "diffusers" else ours + [f.format(dir=folder) for f in MODES[who]]
                    got = run_child(argv, env)
                    if who not in best or got[0] < best[who][0]:
                        best[who] = got
            base = best["diffusers"][0]
            for who, (seconds, rss) in best.items():
                row = {"shape": shape, "size": size, "frames": args.frames, "who": who, "seconds": round(seconds, 1),
                       "s_per_frame": round(seconds / args.frames, 2), "peak_rss_mib": round(rss),
                       "vs_diffusers": round(base / seconds, 3)}  # fmt: skip
                if who in first:
                    row["first_run_seconds"] = round(first[who], 1)
                rows.add(row)


def agreement(args, rows: Rows) -> None:
    import numpy as np
    from PIL import Image

    from lcm_video.metrics import psnr

    frames = args.frames if args.frames != 12 else 24  # the flag's default is the speed runs'
    args.work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, LCM_VIDEO_CACHE=str(args.work / "cache"))
    clip = ROOT / "samples" / "clip.mp4"
    cases = {m: MODES[m] for m in ("torch-fp32", "torch-bf16", "openvino-fp32", "openvino-bf16")}
    got = {}
    for name, flags in cases.items():
        folder = args.work / f"agree-{name}"
        for old in folder.glob("*.png"):
            old.unlink()
        argv = [*LCM_VIDEO, "stylize", str(clip), "-o", str(folder / "%05d.png"), "-p", "a red circle on a white "
                "background", "--model", "toy", "--max-frames", str(frames), "--quiet", *flags]  # fmt: skip
        run_child(argv, env)
        got[name] = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))])
    ref = got["torch-fp32"].astype(np.float64)
    for name, video in got.items():
        diff = np.abs(video.astype(np.float64) - ref)
        psnr_db = psnr(video.astype(np.float64) / 255, ref / 255)  # lcm-video eval's: 100 dB for identical frames
        row = {"who": name, "frames": len(video), "mean_abs_levels": round(float(diff.mean()), 4),
               "max_abs_levels": int(diff.max()), "psnr_db": round(psnr_db, 2)}  # fmt: skip
        rows.add(row)


def unet_batch(args, rows: Rows) -> None:
    import torch

    from lcm_video.models.tiny import sd15_components

    for shape in args.shapes.split(","):
        torch.manual_seed(0)
        unet = sd15_components(unet_channels=SHAPES[shape][0], vae_channels=SHAPES[shape][1])["unet"].eval()
        for size in map(int, args.sizes.split(",")):
            base = None
            for batch in (1, 2, 4, 12):
                x, e = torch.randn(batch, 4, size // 8, size // 8), torch.randn(batch, 77, 768)
                t, w = torch.full((batch,), 599), torch.randn(batch, unet.config.time_cond_proj_dim)
                with torch.inference_mode():
                    unet(x, t, e, timestep_cond=w)  # warm-up at this batch: oneDNN builds its kernels once
                    t0 = time.perf_counter()
                    unet(x, t, e, timestep_cond=w)
                    per_frame = (time.perf_counter() - t0) / batch
                base = base or per_frame
                row = {"shape": shape, "size": size, "batch": batch, "s_per_frame": round(per_frame, 3),
                       "vs_batch1": round(base / per_frame, 3)}  # fmt: skip
                rows.add(row)


def layout(args, rows: Rows) -> None:
    import torch

    from lcm_video.models.tiny import sd15_components

    for shape in args.shapes.split(","):
        torch.manual_seed(0)
        comps = sd15_components(unet_channels=SHAPES[shape][0], vae_channels=SHAPES[shape][1])
        dtype = getattr(torch, args.dtype)
        vae, unet = comps["vae"].eval().to(dtype), comps["unet"].eval().to(dtype)
        for size in map(int, args.sizes.split(",")):
            x, z = torch.randn(1, 3, size, size, dtype=dtype), torch.randn(1, 4, size // 8, size // 8, dtype=dtype)
            e = torch.randn(1, 77, 768, dtype=dtype)
            w = torch.randn(1, unet.config.time_cond_proj_dim, dtype=dtype)
            calls = {
                "vae encode": (vae, lambda m, fmt, x=x: m.encode(x.contiguous(memory_format=fmt)).latent_dist.mode()),
                "vae decode": (vae, lambda m, fmt, z=z: m.decode(z.contiguous(memory_format=fmt)).sample),
                "unet step": (
                    unet,
                    lambda m, fmt, z=z, e=e, w=w: m(z.contiguous(memory_format=fmt), 599, e, timestep_cond=w).sample,
                ),
            }
            for what, (module, call) in calls.items():
                seconds = {}
                for _ in range(2):  # interleaved; the faster of two timed calls after a warm-up each
                    for name, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
                        module.to(memory_format=fmt)
                        with torch.inference_mode():
                            call(module, fmt)
                            t0 = time.perf_counter()
                            out = call(module, fmt)
                            dt = time.perf_counter() - t0
                        seconds[name] = min(seconds.get(name, dt), dt)
                        if name == "contiguous":
                            ref = out
                        else:
                            diff = (out - ref).abs().max().item()
                module.to(memory_format=torch.contiguous_format)
                row = {"shape": shape, "size": size, "dtype": args.dtype, "call": what}
                row["contiguous_s"] = round(seconds["contiguous"], 3)
                row |= {"channels_last_s": round(seconds["channels_last"], 3), "max_abs_diff": diff}
                row["speedup"] = round(seconds["contiguous"] / seconds["channels_last"], 3)
                rows.add(row)


def _frame_calls(unet, vae, size: int, unet_batch: int, enc_batch: int, dec_batch: int, channels_last: bool) -> dict:
    """Seconds per frame of one UNet step, one VAE encode and one decode, each at its batch (fp32 inputs; the modules
    are torch or this project's OpenVINO runners, which take the same calls)."""
    import torch

    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    lat = size // 8
    z = torch.randn(unet_batch, 4, lat, lat)
    e = torch.randn(unet_batch, 77, 768)
    w = torch.randn(unet_batch, unet.config.time_cond_proj_dim)
    t = torch.full((unet_batch,), 599)
    x = torch.rand(enc_batch, 3, size, size).mul(2).sub(1).contiguous(memory_format=fmt)
    zd = torch.randn(dec_batch, 4, lat, lat).contiguous(memory_format=fmt)

    def encode():
        enc = vae.encode(x)
        return enc.latent_dist.sample() if hasattr(enc, "latent_dist") else enc.latents

    with torch.inference_mode():
        return {
            "unet_step": repeat(lambda: unet(z, t, e, timestep_cond=w, return_dict=False)).min / unet_batch,
            "encode": repeat(encode).min / enc_batch,
            "decode": repeat(lambda: vae.decode(zd, return_dict=False)).min / dec_batch,
        }


def ceiling(args, rows: Rows) -> None:
    import torch
    from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel

    from lcm_video.models import openvino as ov
    from lcm_video.pipelines.window import CPU_VAE_CHUNKS

    os.environ["LCM_VIDEO_CACHE"] = str(args.work / "cache")  # the whole-process runs' converted models
    torch.set_grad_enabled(False)
    batch = min(args.frames, 16)
    modes = ("torch-fp32", "torch-bf16", "openvino-fp32", "openvino-bf16", "openvino-fp32-fast", "openvino-bf16-fast")
    for shape in args.shapes.split(","):
        folder = save_models(shape, args.work / shape)
        for size in map(int, args.sizes.split(",")):
            got = {}

            def load(taesd=False, dtype=torch.float32, folder=folder):
                unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=dtype)
                kind, sub = (AutoencoderTiny, "taesd") if taesd else (AutoencoderKL, "vae")
                return unet.eval(), kind.from_pretrained(folder / sub, torch_dtype=dtype).eval()

            unet, vae = load()
            got["diffusers"] = _frame_calls(unet, vae, size, 1, 1, 1, channels_last=False)
            vae.to(memory_format=torch.channels_last)
            got["torch-fp32"] = _frame_calls(unet, vae, size, batch, *CPU_VAE_CHUNKS, channels_last=True)
            del unet, vae
            for mode in modes[1:]:
                bf16 = "bf16" in mode
                if mode == "torch-bf16":
                    unet, vae = load(dtype=torch.bfloat16)
                    vae.to(memory_format=torch.channels_last)
                    got[mode] = _frame_calls(_Cast(unet), _Cast(vae), size, batch, *CPU_VAE_CHUNKS, True)
                    del unet, vae
                    continue
                unet, vae = load(taesd=mode.endswith("fast"))
                precision = "bf16" if bf16 else "f32"
                got[mode] = _frame_calls(ov.OVUNet(unet, precision), ov.OVVae(vae, precision), size, batch,
                                         *CPU_VAE_CHUNKS, channels_last=False)  # fmt: skip
                del unet, vae
            steps = STEPS  # strength 0.6 of 4 LCM steps still runs 4 UNet calls a frame, on both sides
            base = got["diffusers"]
            base_total = steps * base["unet_step"] + base["encode"] + base["decode"]
            for who, calls in got.items():
                total = steps * calls["unet_step"] + calls["encode"] + calls["decode"]
                row = {"shape": shape, "size": size, "who": who, **{k: round(v, 3) for k, v in calls.items()},
                       "s_per_frame": round(total, 3), "unet_share": round(steps * calls["unet_step"] / total, 3),
                       "ceiling_vs_diffusers": round(base_total / total, 3)}  # fmt: skip
                rows.add(row)


def int8(args, rows: Rows) -> None:
    import shutil

    import numpy as np
    import torch
    from PIL import Image

    from lcm_video.metrics import psnr
    from lcm_video.models import openvino as ov
    from lcm_video.models.loading import load_models
    from lcm_video.options import STYLIZE
    from lcm_video.pipelines.prepare import prepare_stylize
    from lcm_video.pipelines.video_to_video import Stylizer, calibration, source_map, stylized_frames
    from lcm_video.pipelines.window import window_layout
    from lcm_video.settings.resolve import resolve
    from lcm_video.toy.video import random_clip
    from lcm_video.video.reader import FrameReader

    cache = args.work / "cache-int8"
    os.environ["LCM_VIDEO_CACHE"] = str(cache)
    for old in (cache / "openvino").glob("unet-int8-*"):  # NNCF timed from scratch; the float models stay cached
        shutil.rmtree(old)
    torch.set_grad_enabled(False)
    frames = args.frames if args.frames != 12 else 16  # the flag's default is the speed runs'; 16: one window
    shapes = args.shapes.split(",")
    cases = [("toy", "toy", 128, "a red circle on a white background")] if "toy" in shapes else []  # trained at 128²
    for shape in (s for s in shapes if s != "toy"):
        folder = str(save_models(shape, args.work / shape))
        cases += [(shape, folder, size, PROMPT) for size in map(int, args.sizes.split(","))]
    for shape, model, size, prompt in cases:
        clip = args.work / f"toy-world-{size}-{frames}"
        if not clip.is_dir():
            clip.mkdir(parents=True)
            for k, frame in enumerate(random_clip(np.random.default_rng(0), size, frames)[0]):
                Image.fromarray(frame).save(clip / f"{k:05d}.png")
        got: dict[str, np.ndarray] = {}
        for dtype in ("float32", "bfloat16"):
            hint = ov.PRECISIONS[getattr(torch, dtype)]
            models = load_models(model, device="cpu", dtype=dtype, backend="openvino")
            options = {"prompt": prompt, "model": model, "backend": "openvino", "dtype": dtype, "steps": STEPS,
                       "strength": STRENGTH, "quiet": True}  # fmt: skip
            cfg = resolve(STYLIZE, None, options, "benchmark")
            prep = prepare_stylize(clip, args.work / "int8-out.mp4", cfg, models.name)
            fmap = source_map(cfg, prep)
            layout = window_layout(models, cfg, fmap.rendered)
            batch = min(layout.size, fmap.rendered)

            def render(models=models, cfg=cfg, prep=prep, fmap=fmap, layout=layout, batch=batch) -> np.ndarray:
                st = Stylizer(models, cfg, batch, prep.prompts, prep.strengths, prep.size, prep.control)
                reader = FrameReader(prep.info, prep.size)
                try:
                    return np.concatenate([out for _, out in stylized_frames(st, reader, prep, fmap, layout)])
                finally:
                    reader.close()

            unet = models.unet
            with unet.recording() as calls:
                calibration(models, cfg, prep, batch)()
            schemes = ov.INT8_SCHEMES if hint == "f32" else (ov.INT8_SCHEME,)  # the schemes compared in float32
            for scheme in (None, *schemes):
                name = f"openvino-{hint}" if scheme is None else f"int8-{scheme}-{hint}"
                row = {"shape": shape, "size": size, "frames": frames, "who": name, "calibration_calls": len(calls)}
                if scheme is None:
                    unet.use_float()
                else:
                    t0 = time.perf_counter()
                    unet.quantize(calls, scheme)
                    row["quantise_s"] = round(time.perf_counter() - t0, 1)
                render()  # compiles (a warm-up)
                row["unet_call_s"] = round(repeat(lambda u=unet, c=calls[0]: u(**c), runs=2).min, 3)
                t0 = time.perf_counter()
                video = got[name] = render()
                row["s_per_frame"] = round((time.perf_counter() - t0) / len(video), 3)
                ref = got.get("openvino-f32")
                if ref is not None:
                    row["psnr_vs_f32_db"] = round(psnr(video / 255.0, ref / 255.0), 2)
                    row["mean_abs_levels_vs_f32"] = round(float(np.abs(video.astype(float) - ref).mean()), 3)
                if shape == "toy" and scheme == ov.INT8_SCHEME and hint == "f32":
                    for old in (cache / "openvino").glob("unet-int8-*"):  # quantised from scratch again: same frames?
                        shutil.rmtree(old)
                    unet.use_float()
                    unet.quantize(calls, scheme)
                    row["same_frames_requantised"] = bool((render() == video).all())
                rows.add(row)
            del models, unet, calls


class _Cast:
    """A bfloat16 torch module called with float32 inputs, as ``--dtype bfloat16`` runs it (floating inputs cast to
    bfloat16 on the way in)."""

    def __init__(self, module):
        self.module, self.config = module, module.config

    def _cast(self, v):
        import torch

        return v.to(torch.bfloat16) if torch.is_tensor(v) and v.is_floating_point() else v

    def __call__(self, *a, **k):
        return self.module(*map(self._cast, a), **{n: self._cast(v) for n, v in k.items()})

    def encode(self, x):
        return self.module.encode(self._cast(x))

    def decode(self, z, return_dict=False):
        return self.module.decode(self._cast(z), return_dict=return_dict)


def memory(args, rows: Rows) -> None:
    args.work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, LCM_VIDEO_CACHE=str(args.work / "cache"))
    for backend in ("torch", "openvino"):
        peaks = {}
        for frames in (30, 300):
            clip = make_clip(args.work / f"mem{frames}.mp4", seconds=frames / 24, size="160x120", rate="24")
            argv = [*LCM_VIDEO, "stylize", str(clip), "-o", str(args.work / "mem.mp4"), "-p", "a red circle"]
            argv += ["--model", "toy", "--backend", backend, "--quiet"]
            if backend == "openvino" and frames == 30:
                run_child(argv, env)  # converts once; the measured runs read the cache
            seconds, peaks[frames] = run_child(argv, env)
            row = {
                "backend": backend,
                "frames": frames,
                "seconds": round(seconds, 1),
                "peak_rss_mib": round(peaks[frames]),
            }
            rows.add(row)
        ratio = {"backend": backend, "ratio_300_to_30": round(peaks[300] / peaks[30], 3)}
        rows.add(ratio)


if __name__ == "__main__":
    main()
