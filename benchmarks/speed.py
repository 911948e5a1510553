"""Benchmarks of lcm_video against diffusers' own pipelines, in the same process, on the same weights.

    python -m benchmarks.speed [--out FILE.json] speed [--frames 12] [--size 256] [--motion-frames 8] [--device cpu]
                               [--dtype float32] [--repeat 1] [--cases stylize,motion,generate]
                               [--models sd15|tiny|sdxl|tiny-sdxl]
    python -m benchmarks.speed [--out FILE.json] memory [--size 256]
    python -m benchmarks.speed [--out FILE.json] consistency [--max-frames N]
    python -m benchmarks.speed [--out FILE.json] skip [--size 256] [--skip-max 10]
    python -m benchmarks.speed [--out FILE.json] compile [--frames 12] [--size 256] [--device cpu]

speed: random-weight models with SD1.5's shapes (860M-parameter UNet with an LCM w-embedding, SD VAE, CLIP-L text
encoder, TAESD, AnimateDiff-shaped motion adapter), 4 steps, strength 0.5. Cases (--repeat N interleaves N runs):
  (a) stylize, guidance 8 (w-embedding on both sides): a per-frame LatentConsistencyModelImg2ImgPipeline loop (what a
      user writes by hand: decode, pipe per frame, write) vs `lcm_video.stylize` (same VAE), and `--fast` (TAESD);
      one untimed 1-frame warm-up call of each first;
  (b) motion stylize: AnimateDiffVideoToVideoPipeline + LCMScheduler (enforce_inference_steps, height/width given:
      its default is 512² whatever the video) vs ours;
  (c) generate: AnimateDiffPipeline + LCMScheduler vs ours.
  (b) and (c) run at guidance 1: those pipelines cannot pass the w-embedding and would double the UNet batch for
  classifier-free guidance, so guidance 1 gives both sides equal work. Their diffusers side is timed on the pipeline
  call alone (frames decoded beforehand, nothing written); ours includes decoding and encoding.
Each reports frames/s, seconds to first frame, and peak memory above the start of the case (CUDA: allocated;
CPU: RSS sampled every 10 ms). ``--models tiny``: the same cases on the random-weight tiny models (``tiny_components``
with a tiny TAESD and motion adapter): seconds, to check the benchmark itself runs. ``--models sdxl``: case (a) only,
on SDXL base's shapes (``sdxl_components``, ~14 GB in float32) against ``StableDiffusionXLImg2ImgPipeline`` +
``LCMScheduler`` at guidance 1, which runs the last int(4 × 0.5) = 2 of its 4 timesteps (499, 259): ours runs
``--steps 2``, the same two (``--dtype bfloat16`` halves the ~14 GB); ``--models tiny-sdxl``: the same on tiny-sdxl.

memory: peak RSS of separate processes rendering 30 and 300 frames (tiny models, SIZE²): ours vs a diffusers
per-frame loop that collects the frames and calls diffusers' export_to_video, as its docs do.

consistency: metrics (lcm-video eval) of the sample clip stylised with the tiny model over a grid of --shared-noise
and --blend (``--max-frames``: only the clip's first frames).

compile: stylize on the SD1.5-shaped models, eager against --compile (torch.compile of UNet and VAE): the first
compiled render includes the compile, the later ones show the steady speed.

skip: the similarity filter (--skip-similar 0/1/2/4) on a 4 s clip, 2 s of a locked-off shot with sensor-like noise
then 2 s of motion (tiny model, CPU): frames rendered, time, and the metrics against the source.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT, Peak, Rows, make_clip

PROMPT = "an oil painting of a harbour"
SD_KEYS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
DTYPES = ("float32", "float16", "bfloat16")


class FirstFrame:
    """An ``on_progress`` callback that notes when the first rendered frames were handed to the writer."""

    def __init__(self):
        self.t: float | None = None

    def __call__(self, event) -> None:
        if event.stage == "render" and self.t is None:
            self.t = time.perf_counter()


def _row(case: str, who: str, frames: int, seconds: float, first: float, peak: Peak) -> dict:
    return {
        "case": case,
        "pipeline": who,
        "frames": frames,
        "seconds": round(seconds, 2),
        "fps": round(frames / seconds, 4),
        "first_frame_s": round(first, 2),
        "peak_mib": round(peak.mib, 1),
    }


def components(which: str) -> dict:
    """Random-weight modules: SD1.5's shapes (``sd15``) or the tiny test models (``tiny``), with a TAESD-shaped
    ``taesd`` and a motion ``adapter``; SDXL's shapes (``sdxl``, ``tiny-sdxl``) with a ``taesd`` and no adapter."""
    from lcm_video.models.tiny import (
        sd15_components,
        sdxl_components,
        tiny_components,
        tiny_motion_adapter,
        tiny_sdxl_components,
        tiny_taesd,
    )

    if which == "sd15":
        return sd15_components()
    if which == "sdxl":
        return sdxl_components()
    if which == "tiny-sdxl":
        return tiny_sdxl_components() | {"taesd": tiny_taesd()}
    return tiny_components() | {"taesd": tiny_taesd(), "adapter": tiny_motion_adapter()}


def bench_speed(args, rows: Rows) -> None:
    import torch

    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    tmp = Path(tempfile.mkdtemp())
    size = f"{args.size}x{args.size}"
    clip = make_clip(tmp / "src.mp4", seconds=args.frames / 24, size=size, rate="24")
    mclip = make_clip(tmp / "msrc.mp4", seconds=args.motion_frames / 24, size=size, rate="24")
    t0 = time.perf_counter()
    comps = components(args.models)
    for k in ("unet", "vae", "text_encoder", "text_encoder_2", "taesd", "adapter"):
        if k in comps:
            comps[k].to(device, dtype)
    print(f"built {args.models}-shaped random models in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    cases = set(args.cases.split(","))
    if "stylize" in cases:
        bench_stylize(args, comps, clip, mclip, tmp, device, dtype, rows)
    if cases & {"motion", "generate"} and "adapter" in comps:  # SDXL shapes: stylize only
        bench_motion(args, comps, mclip, tmp, device, dtype, rows, cases)


def bench_stylize(args, comps, clip, mclip, tmp, device, dtype, rows: Rows) -> None:
    """(a) per-frame diffusers img2img loop vs ours, guidance 8 through the w-embedding on both sides; SDXL shapes:
    ``StableDiffusionXLImg2ImgPipeline`` + ``LCMScheduler`` at guidance 1 (LCM-LoRA-SDXL's: one UNet pass a step)."""
    import decord
    import imageio_ffmpeg
    from diffusers import LatentConsistencyModelImg2ImgPipeline
    from PIL import Image

    from lcm_video import stylize
    from lcm_video.models.container import SDXL_EXTRA, SDXL_PARTS, models_from_components

    sdxl = "text_encoder_2" in comps
    guidance = 1.0 if sdxl else 8.0
    # Equal work: diffusers' SDXL img2img runs the last int(4 × 0.5) = 2 of its 4 LCM timesteps (499, 259), where its
    # LCM img2img pipeline (SD1.5's case) and lcm_video run exactly --steps at any strength; lcm_video's --steps 2 at
    # strength 0.5 is those same two timesteps.
    steps = 2 if sdxl else 4
    prompt, common = PROMPT, {"num_inference_steps": 4, "guidance_scale": guidance}
    nosafe = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
    if sdxl:
        from diffusers import StableDiffusionXLImg2ImgPipeline

        lcm = StableDiffusionXLImg2ImgPipeline(**{k: comps[k] for k in SDXL_PARTS}, **SDXL_EXTRA)
    else:
        lcm = LatentConsistencyModelImg2ImgPipeline(**{k: comps[k] for k in SD_KEYS}, **nosafe)
    lcm.set_progress_bar_config(disable=True)
    first_img = Image.fromarray(decord.VideoReader(str(clip))[0].asnumpy())
    lcm(prompt, image=first_img, strength=0.5, output_type="np", **common)  # warm-up

    def diffusers_loop():
        with Peak(device) as peak:
            t = time.perf_counter()
            vr = decord.VideoReader(str(clip))
            out = imageio_ffmpeg.write_frames(str(tmp / "diffusers.mp4"), (args.size, args.size), fps=24, quality=None)
            out.send(None)
            first = None
            for i in range(len(vr)):
                img = Image.fromarray(vr[i].asnumpy())
                res = lcm(prompt, image=img, strength=0.5, output_type="np", **common).images[0]
                out.send(np.ascontiguousarray((res * 255).round().astype(np.uint8)))
                first = first or time.perf_counter() - t
            out.close()
            took = time.perf_counter() - t
        label = "diffusers SDXL img2img + LCMScheduler" if sdxl else "diffusers LCM img2img"
        return _row("stylize", f"{label}, per-frame loop", len(vr), took, first, peak)

    name = f"{args.models}-shapes"
    cases = {"lcm_video stylize": models_from_components(comps, device, dtype, guidance, name)}
    fast = models_from_components(comps | {"vae": comps["taesd"]}, device, dtype, guidance, name)
    cases[f"lcm_video stylize --fast (TAESD{'XL' if sdxl else ''})"] = fast
    for models in cases.values():
        stylize(
            mclip, tmp / "warm.mp4", prompt, models=models, max_frames=1, quiet=True, guidance=guidance, steps=steps
        )

    def ours(label):
        first = FirstFrame()
        with Peak(device) as peak:
            t = time.perf_counter()
            res = stylize(
                clip,
                tmp / "ours.mp4",
                prompt,
                models=cases[label],
                strength=0.5,
                guidance=guidance,
                steps=steps,
                on_progress=first,
            )
            took = time.perf_counter() - t
        return _row("stylize", label, res.frames, took, first.t - t, peak)

    # Interleaved repeats: a shared machine drifts over minutes, and each ratio compares neighbouring runs.
    for r in range(args.repeat):
        rows.add(diffusers_loop() | {"run": r})
        for label in cases:
            rows.add(ours(label) | {"run": r})


def bench_motion(args, comps, mclip, tmp, device, dtype, rows: Rows, cases) -> None:
    """(b) motion stylize vs AnimateDiffVideoToVideoPipeline, (c) generate vs AnimateDiffPipeline, on one shared
    UNetMotionModel, at guidance 1: diffusers' AnimateDiff pipelines cannot pass the LCM w-embedding and would run
    classifier-free guidance (twice the UNet work) at guidance > 1, so guidance 1 gives both sides equal work."""
    import decord
    from diffusers import AnimateDiffPipeline, AnimateDiffVideoToVideoPipeline, UNetMotionModel
    from PIL import Image

    from lcm_video import generate, stylize
    from lcm_video.models.container import models_from_components

    prompt, common = PROMPT, {"num_inference_steps": 4, "guidance_scale": 1.0}
    hw = {"height": args.size, "width": args.size}  # the pipelines' default is the UNet's 512², whatever the video

    motion_unet = UNetMotionModel.from_unet2d(comps["unet"], comps["adapter"]).to(device, dtype).eval()
    del comps["unet"]
    mcomps = {k: comps[k] for k in SD_KEYS if k != "unet"} | {"unet": motion_unet}
    v2v = AnimateDiffVideoToVideoPipeline(**mcomps, motion_adapter=comps["adapter"])
    ad = AnimateDiffPipeline(**mcomps, motion_adapter=comps["adapter"])
    for pipe in (v2v, ad):
        pipe.set_progress_bar_config(disable=True)
    # Our Models over the very same modules (the motion UNet is shared, not copied)
    mmodels = models_from_components(mcomps, device, dtype, 8.0, f"{args.models}-shapes", adapter=comps["adapter"])
    n = args.motion_frames
    frames = [Image.fromarray(f) for f in decord.VideoReader(str(mclip)).get_batch(range(n)).asnumpy()]

    def theirs(case, label, call):
        with Peak(device) as peak:  # frames already decoded, nothing written: the pipeline call alone
            t = time.perf_counter()
            call()
            took = time.perf_counter() - t
        return _row(case, label, n, took, took, peak)

    def ours(case, label, call):
        first = FirstFrame()
        with Peak(device) as peak:
            t = time.perf_counter()
            res = call(on_progress=first)
            took = time.perf_counter() - t
        return _row(case, label, res.frames, took, first.t - t, peak)

    v2v_kw = {"strength": 0.5, "enforce_inference_steps": True, "output_type": "np"} | common | hw
    style_kw = {"models": mmodels, "motion_adapter": "x", "guidance": 1.0}
    gen_kw = {"models": mmodels, "frames": n, "guidance": 1.0, "width": args.size, "height": args.size}
    todo = []
    if "motion" in cases:
        todo += [
            (
                theirs,
                "motion stylize",
                "diffusers AnimateDiffVideoToVideo + LCM",
                partial(v2v, frames, prompt, **v2v_kw),
            ),
            (
                ours,
                "motion stylize",
                "lcm_video stylize --motion-adapter",
                partial(stylize, mclip, tmp / "m.mp4", prompt, **style_kw),
            ),
        ]
    if "generate" in cases:
        todo += [
            (
                theirs,
                "generate",
                "diffusers AnimateDiff + LCM",
                partial(ad, prompt, num_frames=n, output_type="np", **common, **hw),
            ),
            (ours, "generate", "lcm_video generate", partial(generate, prompt, tmp / "g.mp4", **gen_kw)),
        ]
    for r in range(args.repeat):
        for timer, case, label, call in todo:
            rows.add(timer(case, label, call) | {"run": r})


MEMORY_SCRIPT = """
import resource, sys, numpy as np, torch
from pathlib import Path
which, src, out = sys.argv[1], sys.argv[2], sys.argv[3]
if which == "ours":
    import lcm_video
    lcm_video.stylize(src, out, "x", model="tiny", device="cpu", quiet=True)
else:
    import decord
    from diffusers import LatentConsistencyModelImg2ImgPipeline
    from diffusers.utils import export_to_video
    from PIL import Image
    from lcm_video.models.tiny import tiny_components
    pipe = LatentConsistencyModelImg2ImgPipeline(**tiny_components(), safety_checker=None, feature_extractor=None,
                                                 requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    vr = decord.VideoReader(src)
    frames = [pipe("x", image=Image.fromarray(vr[i].asnumpy()), num_inference_steps=4, strength=0.5,
                   output_type="pil").images[0] for i in range(len(vr))]
    export_to_video(frames, out, fps=30)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def bench_memory(args, rows: Rows) -> None:
    tmp = Path(tempfile.mkdtemp())
    for n in (30, 300):
        src = make_clip(tmp / f"src{n}.mp4", seconds=n / 30, size=f"{args.size}x{args.size}", rate="30")
        for who in ("ours", "diffusers"):
            res = subprocess.run(
                [sys.executable, "-c", MEMORY_SCRIPT, who, str(src), str(tmp / f"{who}{n}.mp4")],
                capture_output=True,
                text=True,
                cwd=ROOT,
                check=True,
            )
            kib = int(res.stdout.strip().splitlines()[-1])
            rows.add({"pipeline": who, "frames": n, "peak_rss_mib": round(kib / 1024, 1)})


def bench_consistency(args, rows: Rows) -> None:
    import lcm_video
    from lcm_video import evaluate

    models = lcm_video.load_models("tiny", device="cpu")
    src = ROOT / "samples" / "clip.mp4"
    tmp = Path(tempfile.mkdtemp())
    for shared in (0.0, 0.5, 1.0):
        for blend in (0.0, 0.2, 0.5):
            out = tmp / f"s{shared}_b{blend}.mp4"
            kw = {"max_frames": args.max_frames} if args.max_frames else {}
            lcm_video.stylize(src, out, "x", models=models, shared_noise=shared, blend=blend, quiet=True, **kw)
            m = evaluate(out, src)
            rows.add({"shared_noise": shared, "blend": blend} | {k: _round(v) for k, v in m.to_dict().items()})


def _round(v):
    return round(v, 5) if isinstance(v, float) else v


def bench_compile(args, rows: Rows) -> None:
    """Eager vs --compile on the SD1.5-shaped models: the first compiled render pays the compile, later ones not."""
    import torch

    from lcm_video import stylize
    from lcm_video.models.container import models_from_components

    device, dtype = torch.device(args.device), torch.float32
    tmp = Path(tempfile.mkdtemp())
    clip = make_clip(tmp / "src.mp4", seconds=args.frames / 24, size=f"{args.size}x{args.size}", rate="24")
    comps = components("sd15")
    for k in ("unet", "vae", "text_encoder"):
        comps[k].to(device, dtype)
    models = models_from_components(comps, device, dtype, 8.0, "sd15-shapes")

    def run(label, **kw):
        t = time.perf_counter()
        res = stylize(clip, tmp / "o.mp4", PROMPT, models=models, guidance=8.0, quiet=True, **kw)
        took = time.perf_counter() - t
        rows.add({"case": label, "frames": res.frames, "seconds": round(took, 2), "fps": round(res.frames / took, 4)})

    run("eager (first call)")
    run("eager")
    run("--compile, first render (compiles)", compile=True)
    run("--compile")
    run("--compile")


def bench_skip(args, rows: Rows) -> None:
    import lcm_video
    from lcm_video import evaluate
    from lcm_video.video.synthetic import still_then_moving

    models = lcm_video.load_models("tiny", device="cpu")
    tmp = Path(tempfile.mkdtemp())
    src = still_then_moving(tmp / "src.mp4", args.size)
    lcm_video.stylize(src, tmp / "warm.mp4", "x", models=models, max_frames=2, quiet=True)
    for level in (0.0, 1.0, 2.0, 4.0):
        out = tmp / f"skip{level}.mp4"
        t = time.perf_counter()
        res = lcm_video.stylize(src, out, "x", models=models, skip_similar=level, skip_max=args.skip_max, quiet=True)
        took = time.perf_counter() - t
        m = evaluate(out, src)
        row = {"skip_similar": level, "skip_max": args.skip_max, "frames": res.frames, "unet_calls": res.unet_calls}
        row |= {"seconds": round(took, 2), "fps": round(res.frames / took, 2)}
        rows.add(row | {k: _round(v) for k, v in m.to_dict().items()})


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write the rows, machine and versions as JSON here")
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--frames", type=int, default=12)
    s.add_argument("--motion-frames", type=int, default=8)
    s.add_argument("--size", type=int, default=256)
    s.add_argument("--device", default="cpu")
    s.add_argument("--dtype", default="float32", choices=DTYPES)
    s.add_argument("--cases", default="stylize,motion,generate", help="comma-separated subset of the three")
    s.add_argument("--repeat", type=int, default=1, help="interleaved runs of the stylize cases")
    s.add_argument(
        "--models", default="sd15", choices=("sd15", "tiny", "sdxl", "tiny-sdxl"), help="the random weights' shapes"
    )
    m = sub.add_parser("memory")
    m.add_argument("--size", type=int, default=256)
    k = sub.add_parser("consistency")
    k.add_argument("--max-frames", type=int, help="only the sample clip's first frames (default: all)")
    c = sub.add_parser("compile")
    c.add_argument("--frames", type=int, default=12)
    c.add_argument("--size", type=int, default=256)
    c.add_argument("--device", default="cpu")
    k = sub.add_parser("skip")
    k.add_argument("--size", type=int, default=256)
    k.add_argument("--skip-max", type=int, default=10)
    return ap


def main(argv: list[str] | None = None) -> Rows:
    args = parser().parse_args(argv)
    rows = Rows(args.out, f"speed {args.what}")
    benches = {"speed": bench_speed, "memory": bench_memory, "consistency": bench_consistency}
    benches |= {"skip": bench_skip, "compile": bench_compile}
    benches[args.what](args, rows)
    return rows


if __name__ == "__main__":
    main()
