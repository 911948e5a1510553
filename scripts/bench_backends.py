"""Whole-process speed and memory of `lcm-video stylize` per backend and precision against the per-frame diffusers
loop a user would write, on several model shapes and sizes. Every case it runs is reported.

    python scripts/bench_backends.py [--shapes small,mid,sd15] [--sizes 256,512] [--frames 12] [--out FILE.json]
                                     [--modes torch,openvino,openvino-bf16,openvino-fast] [--repeat 1]
    python scripts/bench_backends.py --memory [--out FILE.json]
    python scripts/bench_backends.py --unet-batch [--shapes ...] [--sizes ...] [--out FILE.json]
    python scripts/bench_backends.py --agreement [--frames 24] [--out FILE.json]
    python scripts/bench_backends.py --layout [--shapes ...] [--sizes ...] [--out FILE.json]

--agreement: `lcm-video stylize --model toy` on the first frames of samples/clip.mp4 to PNG (no codec in between) per
backend and precision (torch / openvino, float32 / bfloat16), each against torch float32: mean and largest absolute
difference in levels of 255, and PSNR. The trained toy model, because random weights make output that ignores its
input.

--unet-batch: the torch UNet alone (fp32, one step, random weights of each shape), seconds per frame at batch 1, 2,
4 and 12 on each size's latents, each batch timed after a warm-up call at that batch: what batching the UNet buys
on this CPU per shape and size.

--layout: the torch VAE's encoder and decoder and one UNet step alone (fp32, batch 1, random weights of each shape),
with weights and input in the default (contiguous) memory layout and in channels_last, each the faster of two timed
calls after a warm-up, interleaved: what oneDNN's channels-last convolutions buy on this CPU per shape and size, and
the largest difference in the outputs.

--memory: peak RSS of `lcm-video stylize --model toy` rendering 30 and 300 frames of a 160x120 clip, per backend
(torch, openvino; the converted models cached by a first run): streaming means the ratio stays near 1.

Models: random weights (speed does not depend on them), saved as diffusers folders and loaded from disk by both sides:
  small  UNet 64/128/256/256, VAE 64/128/256/256 (half SD's widths)
  mid    UNet 128/256/512/512, SD1.5's VAE
  sd15   SD1.5's UNet (320/640/1280/1280) and VAE
each with an LCM w-embedding, a CLIP-L-sized text encoder, and a TAESD-shaped autoencoder for `--fast`.
Settings: 4 steps, strength 0.6, guidance 8 (the w-embedding, on both sides), float32 unless the mode says.

diffusers: a fresh Python process that loads `LatentConsistencyModelImg2ImgPipeline.from_pretrained(DIR)` and loops
over the frames (decord → pipe → imageio-ffmpeg), as its docs show; ours: `lcm-video stylize CLIP -o OUT --model DIR`
with the mode's flags. Wall seconds of the whole process (imports and loading included) and its peak RSS; for
OpenVINO the first run (which converts and caches) is reported apart from the later ones. Ratios are diffusers'
seconds over ours (above 1: ours is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SHAPES = {
    "small": ((64, 128, 256, 256), (64, 128, 256, 256)),
    "mid": ((128, 256, 512, 512), (128, 256, 512, 512)),
    "sd15": ((320, 640, 1280, 1280), (128, 256, 512, 512)),
}
MODES = {
    "torch": [],
    "openvino": ["--backend", "openvino"],
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
        code = f"from scripts.bench_backends import _save; _save({shape!r}, {str(folder)!r})"
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    return folder


def _save(shape: str, folder: str) -> None:
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


def timed(argv: list[str], env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of a child process; raises with its stderr if it fails."""
    # stderr to a file, not a pipe: a child that writes more than a pipe holds would block while we wait for it
    with tempfile.TemporaryFile() as log:
        t = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        took = time.perf_counter() - t
        log.seek(0)
        err = log.read().decode(errors="replace")
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])}... failed ({proc.returncode}):\n{err[-2000:]}")
    return took, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="small,mid,sd15")
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--modes", default="torch,openvino,openvino-bf16,openvino-fast")
    ap.add_argument("--repeat", type=int, default=1, help="interleaved runs of every side (the fastest counts)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lcm_video_bench_backends")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--memory", action="store_true", help="30 vs 300 frames per backend instead")
    ap.add_argument("--unet-batch", action="store_true", help="the UNet alone at batch 1/2/4/12 instead")
    ap.add_argument("--agreement", action="store_true", help="each backend's frames against torch fp32 instead")
    ap.add_argument("--layout", action="store_true", help="VAE and UNet alone, contiguous vs channels_last, instead")
    args = ap.parse_args()
    if args.layout:
        return layout(args)
    if args.memory:
        return memory(args)
    if args.agreement:
        return agreement(args)
    if args.unet_batch:
        return unet_batch(args)
    from scripts.make_sample import make_clip

    args.work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, LCM_VIDEO_CACHE=str(args.work / "cache"))
    rows: list[dict] = []
    for shape in args.shapes.split(","):
        folder = save_models(shape, args.work / shape)
        for size in map(int, args.sizes.split(",")):
            clip = make_clip(args.work / f"clip{size}.mp4", seconds=args.frames / 24, size=f"{size}x{size}", rate="24")
            out = args.work / "out.mp4"
            theirs = [sys.executable, "-c", DIFFUSERS_LOOP, str(folder), str(clip), str(out), str(size), PROMPT]
            theirs += [str(STEPS), str(STRENGTH), str(GUIDANCE)]
            ours = ["lcm-video", "stylize", str(clip), "-o", str(out), "-p", PROMPT, "--model", str(folder)]
            ours += ["--steps", str(STEPS), "--strength", str(STRENGTH), "--guidance", str(GUIDANCE), "--quiet"]
            modes = args.modes.split(",")
            first: dict[str, float] = {}
            best: dict[str, tuple[float, float]] = {}
            for mode in modes:  # the first OpenVINO run converts: timed apart, once
                if mode.startswith("openvino"):
                    flags = [f.format(dir=folder) for f in MODES[mode]]
                    first[mode] = timed(ours + flags, env)[0]
            for _ in range(args.repeat):
                for who in ["diffusers", *modes]:
                    argv = theirs if who == "diffusers" else ours + [f.format(dir=folder) for f in MODES[who]]
                    got = timed(argv, env)
                    if who not in best or got[0] < best[who][0]:
                        best[who] = got
            base = best["diffusers"][0]
            for who, (seconds, rss) in best.items():
                row = {"shape": shape, "size": size, "frames": args.frames, "who": who, "seconds": round(seconds, 1),
                       "s_per_frame": round(seconds / args.frames, 2), "peak_rss_mib": round(rss),
                       "vs_diffusers": round(base / seconds, 3)}  # fmt: skip
                if who in first:
                    row["first_run_seconds"] = round(first[who], 1)
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.out:
                    args.out.write_text(json.dumps(rows, indent=1))


def agreement(args) -> None:
    import numpy as np
    from PIL import Image

    frames = args.frames if args.frames != 12 else 24  # the flag's default is the speed runs'
    args.work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, LCM_VIDEO_CACHE=str(args.work / "cache"))
    clip = ROOT / "samples" / "clip.mp4"
    cases = {"torch": [], "torch-bf16": ["--dtype", "bfloat16"], **{m: MODES[m] for m in ("openvino", "openvino-bf16")}}
    got = {}
    for name, flags in cases.items():
        folder = args.work / f"agree-{name}"
        for old in folder.glob("*.png"):
            old.unlink()
        argv = ["lcm-video", "stylize", str(clip), "-o", str(folder / "%05d.png"), "-p", "a red circle on a white "
                "background", "--model", "toy", "--max-frames", str(frames), "--quiet", *flags]  # fmt: skip
        timed(argv, env)
        got[name] = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))])
    ref = got["torch"].astype(np.float64)
    rows = []
    for name, video in got.items():
        diff = np.abs(video.astype(np.float64) - ref)
        mse = float((diff**2).mean())
        psnr = None if mse == 0 else round(10 * np.log10(255**2 / mse), 2)
        row = {"who": name, "frames": len(video), "mean_abs_levels": round(float(diff.mean()), 4),
               "max_abs_levels": int(diff.max()), "psnr_db": psnr}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


def unet_batch(args) -> None:
    import torch

    from lcm_video.models.tiny import sd15_components

    rows = []
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
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


def layout(args) -> None:
    import torch

    from lcm_video.models.tiny import sd15_components

    rows = []
    for shape in args.shapes.split(","):
        torch.manual_seed(0)
        comps = sd15_components(unet_channels=SHAPES[shape][0], vae_channels=SHAPES[shape][1])
        vae, unet = comps["vae"].eval(), comps["unet"].eval()
        for size in map(int, args.sizes.split(",")):
            x, z = torch.randn(1, 3, size, size), torch.randn(1, 4, size // 8, size // 8)
            e, w = torch.randn(1, 77, 768), torch.randn(1, unet.config.time_cond_proj_dim)
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
                row = {"shape": shape, "size": size, "call": what, "contiguous_s": round(seconds["contiguous"], 3)}
                row |= {"channels_last_s": round(seconds["channels_last"], 3), "max_abs_diff": diff}
                row["speedup"] = round(seconds["contiguous"] / seconds["channels_last"], 3)
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


def memory(args) -> None:
    from scripts.make_sample import make_clip

    args.work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, LCM_VIDEO_CACHE=str(args.work / "cache"))
    rows = []
    for backend in ("torch", "openvino"):
        peaks = {}
        for frames in (30, 300):
            clip = make_clip(args.work / f"mem{frames}.mp4", seconds=frames / 24, size="160x120", rate="24")
            argv = ["lcm-video", "stylize", str(clip), "-o", str(args.work / "mem.mp4"), "-p", "a red circle"]
            argv += ["--model", "toy", "--backend", backend, "--quiet"]
            if backend == "openvino" and frames == 30:
                timed(argv, env)  # converts once; the measured runs read the cache
            seconds, peaks[frames] = timed(argv, env)
            row = {
                "backend": backend,
                "frames": frames,
                "seconds": round(seconds, 1),
                "peak_rss_mib": round(peaks[frames]),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
        ratio = {"backend": backend, "ratio_300_to_30": round(peaks[300] / peaks[30], 3)}
        rows.append(ratio)
        print(json.dumps(ratio), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
