"""Every render setting, declared once, as fields of small config parts; the configs of stylize and generate are
compositions of those parts; one resolve path turns (defaults, a config object, a YAML file, keyword arguments or
command-line flags) into one validated config.

A part's field is the option's declaration (:func:`lcm_video.options.option`): its name is the YAML key and keyword
argument, its type the option's kind, and its default, limits, help and commands are stated there and nowhere else.
The command-line parsers, YAML loading, keyword arguments, batch job keys, ``--help`` and the README's tables are all
derived from these declarations. No torch here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import yaml

from .errors import UserError
from .models.presets import DEFAULT_MODEL, DEFAULT_MOTION, PRESETS, SMALL_MODELS, motion_preset
from .options import (
    BATCH,
    DISTILL,
    EVAL,
    GENERATE,
    INFO,
    RENDER,
    RERUN,
    STYLIZE,
    UI,
    Option,
    did_you_mean,
    option,
    options_of,
)

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "float16", "bfloat16")
BACKENDS = ("torch", "openvino", "auto")
RENOISE = ("fresh", "initial")
FUSE = ("flat", "linear", "pyramid")
WARP = ("none", "flow")
CROSS_FRAME = ("off", "anchor", "anchor+prev")
FLOW = ("dis", "farneback")  # optical flow estimators (OpenCV)
DEFAULT_WINDOW = 16  # frames per 2D UNet batch: 12 frames at batch 12 run 7% faster per frame than 2 x 6 on CPU
DEFAULT_CONTEXT = 16  # AnimateDiff-family motion modules are trained on 16-frame clips
_SMALL_SIDES = ", ".join(
    f"{side} for {' and '.join(n for n, p in PRESETS.items() if p.size == side)}"
    for side in sorted({p.size for p in PRESETS.values()} - {512})
)  # generate's default size per preset, for --width's help: "64 for tiny and tiny-lora, 128 for ..."


def default_overlap(context: int) -> int:
    """Frames shared by consecutive motion windows when ``--overlap`` is not given: 4, or a quarter of a short
    context (so a context of 4 gets 1, never an overlap as long as the window)."""
    return min(4, context // 4)


# --------------------------------------------------------------------------------------------------------------------
# The parts. Field order is the order of --help and of the README tables.


@dataclass(frozen=True)
class PromptConfig:
    """What to render."""

    prompt: str = option(
        "", "what the video should look like", short="-p", metavar="TEXT", doc="what the video should look like"
    )
    negative_prompt: str = option(
        "",
        "what to avoid (classifier-free guidance models at --guidance > 1)",
        metavar="TEXT",
        doc="what to avoid; classifier-free guidance models with `--guidance` > 1 only (refused elsewhere rather "
        "than ignored)",
    )
    prompt_at: tuple[str, ...] = option(
        (),
        "prompt from output frame FRAME on, interpolated from the previous key; repeatable (prompt travel)",
        commands=(STYLIZE, GENERATE),
        metavar="FRAME=TEXT",
        doc="prompt from output frame FRAME on, linearly interpolated from the previous key (frame 0: `--prompt`); "
        "repeatable (prompt travel)",
    )


@dataclass(frozen=True)
class ModelConfig:
    """Which weights, on which device, in which precision."""

    model: str | None = option(
        DEFAULT_MODEL,
        "preset (see `lcm-video models`), hub id, diffusers dir or .safetensors file",
        defaults={GENERATE: None},
        derived="from the motion preset",
        metavar="NAME",
        doc="preset, hub id, diffusers directory or single `.safetensors`/`.ckpt` file",
    )
    lora: tuple[str, ...] = option(
        (),
        "LoRA to fuse, repeatable; the scale defaults to 1",
        metavar="ID[:SCALE]",
        doc="LoRA to fuse, repeatable; scale defaults to 1 (fused into the weights: no slowdown)",
    )
    vae: str | None = option(
        None,
        "VAE override: hub id or directory (AutoencoderKL or AutoencoderTiny; taesd for speed)",
        derived="the model's",
        metavar="ID",
        doc="`AutoencoderKL` or `AutoencoderTiny` hub id or directory; `taesd` for speed",
    )
    fast: bool = option(
        False,
        "TAESD instead of the full VAE: ~2x faster, slightly softer",
        doc="TAESD instead of the full VAE (same as `--vae taesd`): the VAE costs as much as the 4 UNet steps, TAESD "
        "~1/10 of it; slightly softer detail",
    )
    motion_adapter: str | None = option(
        None,
        "motion module: preset (animatelcm, animatediff-v1-5-2, tiny), hub id, directory or file",
        derived={STYLIZE: "none", GENERATE: "animatelcm (tiny with the tiny and toy models)"},
        metavar="NAME",
        doc="motion preset, hub id, diffusers directory or single file; for stylize it turns on motion-aware windows",
    )
    device: str = option(
        "auto",
        "auto (CUDA > MPS > CPU), cpu, cuda, cuda:N, mps",
        metavar="D",
        doc="CUDA > MPS > CPU; or `cpu`, `cuda`, `cuda:1`, `mps`",
    )
    dtype: str = option(
        "auto",
        "auto (float16 on GPU; on CPU bfloat16 where it is native, else float32), float32, float16, bfloat16",
        choices=DTYPES,
        metavar="T",
        doc="float16 on GPU; on a CPU bfloat16 where the CPU computes it in hardware (AVX512-BF16 or AMX), else "
        "float32; or `float32`, `float16`, `bfloat16`. `float32` for frames that match diffusers' float32 pipelines",
    )
    compile: bool = option(
        False,
        "torch.compile the UNet and VAE: ~1.25x faster per frame on CPU after a one-off compile of minutes",
        doc="`torch.compile` the UNet and VAE (in place): measured ~1.25× faster per frame on CPU once compiled, after "
        "a one-off compile of about 2 minutes (cached on disk by PyTorch: ~13 s in later runs); worth it for long "
        "videos, batch runs and repeated renders. Frames move by float rounding only. CPU needs a C++ compiler "
        "(`g++`); not on MPS",
    )
    backend: str = option(
        "torch",
        "torch, or openvino (CPU): UNet and VAE converted once per shape, cached on disk; auto picks",
        choices=BACKENDS,
        metavar="B",
        doc="`torch`, or `openvino` (CPU only): the UNet and the VAE (or TAESD) converted by OpenVINO at the render's "
        "shapes after LoRAs are fused, cached on disk ($LCM_VIDEO_CACHE, default ~/.cache/lcm_video), so only a "
        "first run converts (it says so); computes in `--dtype`'s precision (float32 or bfloat16). `auto`: "
        "openvino on a CPU where it is installed, else torch. Needs the `openvino` extra",
    )


@dataclass(frozen=True)
class SamplingConfig:
    """The LCM run of each frame."""

    steps: int = option(
        4,
        "denoising steps per frame, run exactly",
        lo=1,
        hi=50,
        hint="; LCM models work best with 2-8",
        metavar="N",
        doc="denoising steps per frame, exactly N at any strength (generate: timesteps 999, 759, 499, 259)",
    )
    strength: float = option(
        0.5,
        "how far from the source, in (0, 1]",
        commands=(STYLIZE,),
        lo=0.0,
        hi=1.0,
        lo_open=True,
        hint="; 0.3-0.7 keeps the source's layout",
        metavar="S",
        doc="in (0, 1]: how far from the source; 0.3–0.6 keeps the layout, 1 ignores it",
    )
    strength_at: tuple[str, ...] = option(
        (),
        "strength from output frame FRAME on, interpolated from the previous key; repeatable",
        commands=(STYLIZE,),
        metavar="FRAME=S",
        doc="strength from output frame FRAME on, linearly interpolated from the previous key (frame 0: "
        "`--strength`); repeatable; each frame keeps its own timesteps (not with `--motion-adapter`)",
    )
    guidance: float | None = option(
        None,
        "guidance scale",
        derived="per preset",
        lo=0.0,
        metavar="G",
        doc="guidance scale: a w-embedding for LCM checkpoints, classifier-free guidance above 1 for LoRA-style models",
    )
    seed: int = option(
        0,
        "random seed",
        lo=0,
        metavar="N",
        doc="same seed and settings → same frames, however the video is windowed",
    )


@dataclass(frozen=True)
class TemporalConfig:
    """What ties frames together: shared noise, blending, windows and their fusion, the similarity filter."""

    shared_noise: float = option(
        1.0,
        "0..1, share of the noise common to every frame",
        defaults={GENERATE: 0.0},
        lo=0.0,
        hi=1.0,
        metavar="A",
        doc="0..1, share of the noise common to every frame: ε = √A·shared + √(1-A)·own",
    )
    blend: float = option(
        0.5,
        "0..1, latent blending toward the previous frame",
        defaults={GENERATE: 0.0},
        lo=0.0,
        hi=1.0,
        hint="; 0 turns blending off, 0.2-0.7 is typical",
        metavar="B",
        doc="0..1, latent blending: each frame's x0 estimate is pulled toward the previous frame's at every step. "
        "Stylise's 0.5 was chosen by measurement (see How it keeps frames steady). A cold batch segment first "
        "re-renders the frames blending still remembers (17 at 0.5, 8 at 0.2)",
    )
    warp: str = option(
        "flow",
        "blend toward the previous frame moved along the source's optical flow (flow), or in place (none)",
        commands=(STYLIZE,),
        choices=WARP,
        metavar="|".join(WARP),
        doc="`flow`: the previous frame's x0 is first moved along the source's optical flow (OpenCV DIS, on the "
        "latent grid); where the flow's forward-backward and colour checks find part of a cell occluded, that part "
        "blends in place; a hard cut (most of the frame new) is not blended across; `--pixel-blend` follows the same "
        "flow. Warp error at the default blends 0.16-0.35x of `none` on a pan and a cut, 0.66-0.73x on a crossing "
        "object, 0.60-0.67x on a zoom (BENCHMARKS.md), about 70-100 ms of CPU a frame at 256²-512². `none`: blended "
        "at the same position, which smears moving footage",
    )
    pixel_blend: float = option(
        0.5,
        "0..1, each output frame blended toward the previous one (along the flow with --warp flow)",
        commands=(STYLIZE,),
        lo=0.0,
        hi=1.0,
        hint="; 0 turns it off",
        metavar="P",
        doc="0..1, blending of the decoded frames: each output frame is pulled toward the previous output frame "
        "with this weight, after `--blend` has done its part on the latents. With `--warp flow` the previous frame "
        "is moved along the source's optical flow at full resolution and blended only where the flow's checks pass "
        "(not across a hard cut), which the latent grid (8 pixels a cell) cannot do; with `--warp none` in place. "
        "Stylise's 0.5 was chosen by measurement (see How it keeps frames steady); a cold batch segment re-renders "
        "the frames it still remembers, as for `--blend`. Generate has no source flow and does not use it",
    )
    cross_frame: str = option(
        "off",
        "spatial self-attention also attends to the first frame (anchor) and the previous one (anchor+prev)",
        commands=(STYLIZE, GENERATE),
        choices=CROSS_FRAME,
        metavar="|".join(CROSS_FRAME),
        doc="cross-frame attention (Text2Video-Zero, Rerender-A-Video): every frame's spatial self-attention in the "
        "UNet also attends to the render's first frame (`anchor`) and to the previous frame (`anchor+prev`) at the "
        "same step and layer, so what frames draw agrees; text and temporal attention are unchanged. A segment "
        "that starts later renders frame 0 once more to get the anchor (with a motion adapter, its first window)",
    )
    renoise: str = option(
        "fresh",
        "re-noise each step with a new ε, or the first step's",
        choices=RENOISE,
        metavar="fresh|initial",
        doc="re-noise each step with new noise (as diffusers) or the step-0 noise (as StreamDiffusion)",
    )
    window: int | None = option(
        None,
        "frames per UNet batch; memory grows with it",
        commands=(STYLIZE,),
        derived=str(DEFAULT_WINDOW),
        lo=1,
        metavar="N",
        doc="frames per UNet batch (the VAE takes at most 8 at a time); memory grows with this, never with the "
        "video's length; lower it if the GPU runs out of memory. Not with `--motion-adapter` (the window is then "
        "`--context`)",
    )
    context: int | None = option(
        None,
        "frames per motion window",
        derived=f"{DEFAULT_CONTEXT}, the training length",
        lo=2,
        hint="; motion modules are trained on 16",
        metavar="N",
        doc="frames per motion window (at most what the adapter supports, 32 for AnimateDiff); motion adapters only",
    )
    overlap: int | None = option(
        None,
        "frames shared by consecutive motion windows",
        derived="min(4, context / 4)",
        lo=0,
        metavar="N",
        doc="frames shared by consecutive motion windows, fused at every step; motion adapters only",
    )
    fuse: str = option(
        "linear",
        "weights of the frames two motion windows share",
        choices=FUSE,
        metavar="flat|linear|pyramid",
        doc="how the shared frames' x0 of two windows are weighted at each step",
    )
    skip_similar: float = option(
        0.0,
        "reuse the last output for source frames within L levels (mean abs. 8-bit difference) of the last "
        "rendered one: faster on still shots, may stutter (0 = off; 1-3 is typical)",
        commands=(STYLIZE,),
        lo=0.0,
        hi=255.0,
        hint="; 0 turns the filter off, 1-3 is typical",
        metavar="L",
        doc="similarity filter: a source frame whose mean absolute difference from the last *rendered* source frame "
        "is at most L 8-bit levels (on a 64-pixel thumbnail) repeats that frame's output instead of being rendered; "
        "1–3 suits still shots and locked-off cameras; 0 is off. Faster in proportion to the frames it skips; a "
        "quality trade-off (motion within L levels freezes, which can look like stutter), deterministic (no random "
        "skips, so segments and processes agree)",
    )
    skip_max: int = option(
        10,
        "at most this many reused frames in a row",
        commands=(STYLIZE,),
        lo=1,
        metavar="N",
        doc="at most N repeated frames in a row, so a slow change still shows up",
    )


@dataclass(frozen=True)
class FramesConfig:
    """Which frames, at what size and rate."""

    width: int | None = option(
        None,
        "output width, a multiple of 8",
        derived={STYLIZE: "source size, longer side ≤ 768", GENERATE: f"512 ({_SMALL_SIDES})"},
        multiple_of=8,
        metavar="W",
        doc="multiples of 8; one alone keeps the aspect; both: scaled to cover, centre-cropped",
    )
    height: int | None = option(
        None,
        "output height, a multiple of 8",
        derived="as --width",
        multiple_of=8,
        metavar="H",
        doc="as `--width`",
    )
    start: float = option(
        0.0, "start time in seconds", commands=(STYLIZE,), lo=0.0, metavar="S", doc="seconds; the audio is kept in sync"
    )
    end: float | None = option(
        None, "end time in seconds", commands=(STYLIZE,), derived="end of the video", metavar="S", doc="seconds"
    )
    max_frames: int | None = option(
        None, "render at most this many frames", commands=(STYLIZE,), lo=1, metavar="N", doc="render at most N frames"
    )
    frames: int = option(
        16,
        "clip length in frames",
        commands=(GENERATE,),
        lo=1,
        hi=100_000,
        metavar="N",
        doc="clip length; any length, memory stays that of one window",
    )
    fps: Fraction | None = option(
        None,
        "frame rate, e.g. 12 or 30000/1001",
        defaults={GENERATE: Fraction(8)},
        derived="the source's exact rate (or frame times)",
        metavar="R",
        doc="output rate (`12`, `29.97`, `30000/1001`); stylize drops or repeats source frames to reach it (a "
        "variable-rate source otherwise keeps each frame's own time); for an image-sequence input it is the frames' "
        "own rate (default 24, said)",
    )


@dataclass(frozen=True)
class OutputConfig:
    """How the result is written, and what is said while it renders."""

    crf: int = option(
        18, "encoder quality, lower is better", lo=0, hi=63, hint="; 18 is near lossless", metavar="N", doc=None
    )
    codec: str | None = option(
        None,
        "ffmpeg video encoder",
        derived="libx264; libvpx-vp9 for .webm",
        metavar="C",
        doc="any ffmpeg video encoder (`libx265`, `libvpx-vp9`, `h264_nvenc`); `.webm` outputs default to VP9, `.gif` "
        "outputs (a palette per frame, no audio, no recorded settings) take none",
    )
    preset: str = option("medium", "x264/x265 speed preset", metavar="P")
    audio: bool = option(True, "drop the source's audio", commands=(STYLIZE,))
    metrics: bool = option(
        False,
        "also write OUTPUT_STEM.metrics.json (see `lcm-video eval`)",
    )
    quiet: bool = option(False, "no progress bar", commands=(STYLIZE, GENERATE, BATCH, RERUN), short="-q")


PARTS: dict[str, type] = {
    "prompt": PromptConfig,
    "model": ModelConfig,
    "sampling": SamplingConfig,
    "temporal": TemporalConfig,
    "frames": FramesConfig,
    "output": OutputConfig,
}

# Options that are not render settings: paths, the config file, and the batch and eval commands' own.
EXTRA_OPTIONS: tuple[Option, ...] = (
    Option(
        "input",
        "path",
        "source video file, or a folder of frames (PNG/JPEG..., natural order)",
        commands=(STYLIZE,),
        positional=True,
    ),
    Option(
        "output",
        "path",
        "output video (.mp4, .mkv, .mov, .webm, .gif), or PNG frames (frames/%05d.png, or a folder); missing "
        "folders are created",
        commands=(*RENDER, RERUN),
        short="-o",
        required=True,
        metavar="FILE",
    ),
    Option(
        "config",
        "path",
        "YAML file of options (keys as the flags, with _ for -); flags given here win",
        commands=RENDER,
        metavar="FILE.yaml",
        doc="any options below as `key: value` (`configs/*.yaml` document them); flags on the command line win; an "
        "unknown key is an error",
    ),
    Option(
        "jobs",
        "path",
        "YAML job file: defaults: {...} and jobs: [{name, mode, input, output, ...}]",
        commands=(BATCH,),
        positional=True,
    ),
    Option(
        "out",
        "path",
        "folder for outputs, work files and report.json",
        commands=(BATCH,),
        required=True,
        metavar="DIR",
    ),
    Option(
        "segment_frames",
        "int",
        "frames per unit of work (also a job-file default or job key)",
        default=240,
        commands=(BATCH,),
        lo=1,
        metavar="N",
    ),
    Option("video", "path", "video to measure", commands=(EVAL,), positional=True),
    Option(
        "source",
        "path",
        "the video it was made from (rerun: default, the recorded source)",
        commands=(EVAL, RERUN),
        metavar="FILE",
    ),
    Option(
        "eval_frames",
        "int",
        "measure only the first N frames",
        commands=(EVAL,),
        flag="--max-frames",
        lo=2,
        hint=" (temporal metrics need two frames)",
        metavar="N",
    ),
    Option(
        "flow",
        "str",
        "optical flow of warp_error and tof: dis or farneback (grade a method by a flow it did not use)",
        default="dis",
        commands=(EVAL,),
        choices=FLOW,
        metavar="|".join(FLOW),
    ),
    Option(
        "made",
        "path",
        "a video lcm-video made (its settings are recorded in it)",
        commands=(INFO, RERUN),
        positional=True,
    ),
    Option("json", "bool", "print JSON", False, commands=(EVAL, INFO)),
    Option(
        "host",
        "str",
        "address to serve on; anything but 127.0.0.1 lets other machines in",
        default="127.0.0.1",
        commands=(UI,),
        metavar="ADDR",
        doc="address to serve on; the default lets in this machine only. `0.0.0.0` serves the whole network (the UI "
        "has no login: do that on a trusted network only)",
    ),
    Option("port", "int", "port to serve on", default=7860, commands=(UI,), lo=1, hi=65535, metavar="N"),
    Option(
        "ui_model",
        "str",
        "model selected when the page opens; a local path given here is offered in the page too",
        default=None,
        commands=(UI,),
        derived="the stylize default",
        flag="--model",
        metavar="NAME",
        doc="model selected when the page opens (preset, hub id, directory or file). The page itself loads presets "
        "and hub ids only: a local path is offered in it only when given here",
    ),
    Option(
        "ui_out",
        "path",
        "folder the renders are written to (and the only one the page serves)",
        default="lcm-video-ui",
        commands=(UI,),
        flag="--out",
        metavar="DIR",
    ),
    Option(
        "max_upload_mb",
        "int",
        "largest upload accepted, in MB",
        default=500,
        commands=(UI,),
        lo=1,
        metavar="MB",
    ),
    Option(
        "share",
        "bool",
        "also serve through a public gradio.live link (needs internet; anyone with the link can render)",
        False,
        commands=(UI,),
    ),
)

SETTINGS: dict[str, Option] = {o.name: o for name, part in PARTS.items() for o in options_of(part, name)}
"""Every render setting by name (the YAML key / keyword argument), across all parts."""


LORA_TARGETS = (  # the layers LCM-LoRA adapts (diffusers' train_lcm_distill_lora_sd_wds.py)
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "proj_in",
    "proj_out",
    "ff.net.0.proj",
    "ff.net.2",
    "conv1",
    "conv2",
    "conv_shortcut",
    "downsamplers.0.conv",
    "upsamplers.0.conv",
    "time_emb_proj",
)


@dataclass(frozen=True)
class DistillConfig:
    """Every option of ``lcm-video distill``: latent consistency distillation of ``teacher`` on ``data`` into ``out``.

    Defaults follow diffusers' consistency-distillation scripts (DDIM solver over 50 of 1000 timesteps, w in
    [5, 15], Huber c = 0.001, EMA 0.95, LoRA rank 64) except where a CPU needs smaller numbers (batch size).
    """

    teacher: str = option(
        "",
        "the model to distil: preset, hub id, diffusers dir or single file",
        commands=(DISTILL,),
        required=True,
        metavar="MODEL",
    )
    data: str = option(
        "",
        "folder of images/videos with same-name .txt captions, or a .csv/.jsonl of path,caption",
        commands=(DISTILL,),
        required=True,
        metavar="DIR",
    )
    out: str = option(
        "",
        "output folder: the LoRA file (lora) or a diffusers model folder (full), checkpoints, validation grids",
        commands=(DISTILL,),
        required=True,
        metavar="DIR",
    )
    mode: str = option(
        "lora",
        "lora: train LoRA adapters only (LCM-LoRA; loads with --lora); full: a whole LCM UNet with a guidance "
        "embedding (loads with --model)",
        commands=(DISTILL,),
        choices=("lora", "full"),
        metavar="lora|full",
    )
    lora_rank: int = option(64, "LoRA rank (lora mode)", commands=(DISTILL,), lo=1, metavar="R")
    steps: int = option(1000, "training steps", commands=(DISTILL,), lo=1, metavar="N")
    batch_size: int = option(4, "images per step and process", commands=(DISTILL,), lo=1, metavar="N")
    lr: float | None = option(
        None,
        "AdamW learning rate",
        commands=(DISTILL,),
        derived="1e-4 (lora), 1e-6 (full)",
        lo=0.0,
        lo_open=True,
        metavar="LR",
    )
    resolution: int = option(
        512,
        "training size (square; shorter side scaled, centre crop)",
        commands=(DISTILL,),
        multiple_of=8,
        metavar="PX",
    )
    w_min: float = option(
        5.0, "smallest guidance w (scale − 1) of the CFG-augmented teacher", commands=(DISTILL,), lo=0.0, metavar="W"
    )
    w_max: float = option(
        15.0, "largest guidance w of the CFG-augmented teacher", commands=(DISTILL,), lo=0.0, metavar="W"
    )
    ddim_points: int = option(
        50, "DDIM solver points over the teacher's timesteps (skip = 1000 / N)", commands=(DISTILL,), lo=1, metavar="N"
    )
    loss: str = option("huber", "consistency loss", commands=(DISTILL,), choices=("huber", "l2"), metavar="huber|l2")
    huber_c: float = option(0.001, "the Huber loss's c", commands=(DISTILL,), lo=0.0, lo_open=True, metavar="C")
    ema_decay: float = option(
        0.95,
        "EMA decay of the target network (also in lora mode: diffusers issue 6505); 0 = no target network",
        commands=(DISTILL,),
        lo=0.0,
        hi=1.0,
        metavar="D",
    )
    seed: int = option(0, "seed of data order, noise, timesteps and w", commands=(DISTILL,), lo=0, metavar="N")
    save_every: int = option(
        100, "write a checkpoint every N steps (and at the end)", commands=(DISTILL,), lo=1, metavar="N"
    )
    validate_every: int = option(
        0,
        "write a PNG grid of validation prompts at 1, 2 and 4 steps every N steps (0: at the end only)",
        commands=(DISTILL,),
        lo=0,
        metavar="N",
    )
    validation_prompt: tuple[str, ...] = option(
        (),
        "prompt for the validation grid, repeatable",
        commands=(DISTILL,),
        derived="the first 4 captions",
        metavar="TEXT",
    )
    resume: bool = option(False, "continue from the latest checkpoint in --out", commands=(DISTILL,))
    device: str = option("auto", "auto (CUDA > MPS > CPU), cpu, cuda, cuda:N", commands=(DISTILL,), metavar="D")
    dtype: str = option(
        "auto",
        "weights of the frozen teacher and text encoder: auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16",
        commands=(DISTILL,),
        choices=("auto", "float32", "bfloat16"),
        metavar="T",
    )
    quiet: bool = option(False, "no progress bar", commands=(DISTILL,), short="-q")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (1e-4 if self.mode == "lora" else 1e-6)

    def flat(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


DISTILL_SETTINGS: dict[str, Option] = {o.name: o for o in options_of(DistillConfig, "distill")}


def resolve_distill(
    config: DistillConfig | str | Path | None = None, options: dict[str, Any] | None = None, source: str = "options"
) -> DistillConfig:
    """The validated config of a distillation (same path as :func:`resolve`: defaults ← config/YAML ← options)."""
    values = {} if config is None else (load_yaml(config) if isinstance(config, (str, Path)) else config.flat())
    values = {**values, **(options or {})}
    coerced = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        opt = DISTILL_SETTINGS.get(name)
        if opt is None:
            raise UserError(f"unknown key {key!r} in {source}{did_you_mean(name, DISTILL_SETTINGS)}")
        coerced[name] = opt.coerce(value)
    cfg = DistillConfig(**coerced)
    for name, value in cfg.flat().items():
        DISTILL_SETTINGS[name].check(value)
    for name in ("teacher", "data", "out"):
        if not getattr(cfg, name):
            raise UserError(f"--{name} is required")
    if cfg.w_min > cfg.w_max:
        raise UserError(f"--w-min ({cfg.w_min:g}) must not be above --w-max ({cfg.w_max:g})")
    return cfg


def options_for(command: str) -> list[Option]:
    """The options ``command`` takes, paths and positionals first, then the parts' settings in declaration order."""
    extra = [o for o in EXTRA_OPTIONS if command in o.commands]
    settings = DISTILL_SETTINGS if command == DISTILL else SETTINGS
    return [*extra, *(o for o in settings.values() if command in o.commands)]


# --------------------------------------------------------------------------------------------------------------------
# The composed configs.


def _part_defaults(part: type, command: str) -> Any:
    """A part with ``command``'s defaults (most options have one default; a few differ per command)."""
    return part(**{f.name: SETTINGS[f.name].default_for(command) for f in dataclasses.fields(part)})


@dataclass(frozen=True)
class RenderConfig:
    """A render's settings as parts: ``cfg.sampling.steps``, ``cfg.temporal.blend``, ``cfg.model.model``, ...

    A part left out gets the command's defaults. Build one from flat ``name=value`` pairs (as in YAML and keyword
    arguments) with :meth:`from_options`, or with :func:`resolve`, which also reads a YAML file and validates.
    """

    command: ClassVar[str] = ""
    prompt: PromptConfig | None = None
    model: ModelConfig | None = None
    sampling: SamplingConfig | None = None
    temporal: TemporalConfig | None = None
    frames: FramesConfig | None = None
    output: OutputConfig | None = None

    def __post_init__(self) -> None:
        for name, part in PARTS.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, _part_defaults(part, self.command))

    @classmethod
    def from_options(cls, values: dict[str, Any] | None = None, source: str = "options", base=None):
        """A config from flat ``name: value`` pairs over ``base`` (default: this command's defaults); types coerced,
        unknown keys and keys of another command refused (``source`` names where they came from)."""
        base = cls() if base is None else base
        changes: dict[str, dict[str, Any]] = {}
        for key, value in (values or {}).items():
            opt = setting(cls.command, key, source)
            changes.setdefault(opt.part, {})[opt.name] = opt.coerce(value)
        parts = {name: dataclasses.replace(getattr(base, name), **ch) for name, ch in changes.items()}
        return dataclasses.replace(base, **parts)

    @classmethod
    def make(cls, **options: Any):
        """A config from keyword options over this command's defaults: ``StylizeConfig.make(strength=0.4)``; types
        coerced, unknown names refused. Not validated across options: :func:`resolve` does that."""
        return cls.from_options(options, f"{cls.__name__}.make()")

    def replace(self, **values: Any):
        """A copy with flat options changed: ``cfg.replace(steps=2, blend=0.3)``."""
        return self.from_options(values, base=self)

    def flat(self) -> dict[str, Any]:
        """Every setting of this command as ``{name: value}``: what a YAML file of this config would hold."""
        return {o.name: getattr(getattr(self, o.part), o.name) for o in SETTINGS.values() if self.command in o.commands}


@dataclass(frozen=True)
class StylizeConfig(RenderConfig):
    """Every setting of ``lcm-video stylize``, with stylize's defaults (``shared_noise`` 1, ``blend`` 0.5, ...)."""

    command: ClassVar[str] = STYLIZE


@dataclass(frozen=True)
class GenerateConfig(RenderConfig):
    """Every setting of ``lcm-video generate``, with generate's defaults (``shared_noise`` 0, ``fps`` 8, ...)."""

    command: ClassVar[str] = GENERATE


CONFIGS: dict[str, type[RenderConfig]] = {STYLIZE: StylizeConfig, GENERATE: GenerateConfig}


def setting(command: str, key: Any, source: str = "options") -> Option:
    """The setting ``key`` (``-`` or ``_``) of ``command``; unknown, or of the other command: a UserError with the
    closest valid key."""
    name = str(key).replace("-", "_")
    opt = SETTINGS.get(name)
    if opt is not None and command in opt.commands:
        return opt
    valid = [o.name for o in SETTINGS.values() if command in o.commands]
    if opt is not None:
        raise UserError(
            f"{opt.label} is not an option of {command} ({source}); it applies to {', '.join(opt.commands)}"
        )
    hint = did_you_mean(name, valid)
    if hint:
        raise UserError(f"unknown key {key!r} in {source}{hint}")
    raise UserError(f"unknown key {key!r} in {source}; valid keys: {', '.join(sorted(valid))}")


# --------------------------------------------------------------------------------------------------------------------
# Resolving: defaults ← config object ← YAML file ← keyword arguments / flags, then validation.


def load_config_file(path: str | Path, command: str) -> dict[str, Any]:
    """A ``--config``'s settings: a YAML file's, or those recorded in a video this tool made (``record.py``)."""
    from .video.writer import CONTAINERS

    if Path(path).suffix.lower() in CONTAINERS:
        from .record import recorded_settings

        return recorded_settings(path, command)
    return load_yaml(path)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with the safe loader; any Python object tag is refused."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file {str(p)!r} not found; check the path given to --config")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"config file {str(p)!r} is not plain YAML{line}: {problem}") from None
    except UnicodeDecodeError:
        raise UserError(f"config file {str(p)!r} is not UTF-8 text") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {str(p)!r} must hold a mapping of option: value, not {type(data).__name__}")
    return data


def resolve(
    command: str,
    config: RenderConfig | str | Path | None = None,
    options: dict[str, Any] | None = None,
    source: str = "options",
    loaded_model: str | None = None,
) -> RenderConfig:
    """The one path to a validated config of ``command``.

    ``config``: a config object, or a YAML file's path (its keys are the options' names). ``options``: flat
    ``name: value`` pairs (keyword arguments, command-line flags, a batch job's keys) that win over ``config``;
    ``source`` names them in error messages. Every value is type-checked and range-checked, then the options are
    checked together (see :func:`validate`). Generate's derived defaults (model, motion adapter, size) are filled
    in, the model from ``loaded_model`` (the name of already loaded models) when the options give none.
    """
    cls = CONFIGS[command]
    if isinstance(config, (str, Path)):
        cfg = cls.from_options(load_config_file(config, command), str(config))
    elif config is None:
        cfg = cls()
    elif isinstance(config, cls):
        cfg = config
    else:
        raise UserError(f"config must be a {cls.__name__} or a YAML file's path, not {type(config).__name__}")
    cfg = validate(cfg.from_options(options, source, base=cfg))
    return derive_generate(cfg, loaded_model) if command == GENERATE else cfg


def derive_generate(cfg: RenderConfig, loaded_model: str | None = None) -> RenderConfig:
    """Fill generate's derived defaults: the motion adapter (``tiny`` for the tiny and toy models, else AnimateLCM),
    the model (the adapter preset's base), the size (the model preset's own, else 512²)."""
    model = cfg.model.model or loaded_model
    adapter = cfg.model.motion_adapter or ("tiny" if model in SMALL_MODELS else DEFAULT_MOTION)
    mpreset = motion_preset(adapter)
    model = model or (mpreset.base if mpreset else PRESETS["sd15-lcm-lora"].base)
    side = PRESETS[model].size if model in PRESETS else 512
    w, h = cfg.frames.width or side, cfg.frames.height or side
    return cfg.replace(motion_adapter=adapter, model=model, width=w, height=h)


def _keyframes(flag: str, specs: tuple[str, ...], frames: int | None, first, value, form: str) -> dict:
    """``FRAME=VALUE`` specs of ``flag`` → {frame: value(text)} sorted, frame 0 defaulting to ``first``. ``value``
    turns the text after ``=`` into the key's value, or None when it is not one (``form`` says what is wanted).
    ``frames``: the output's frame count, or None where it is not known yet (a stylise before its source is probed)."""
    keys: dict = {}
    for spec in specs:
        head, sep, text = spec.partition("=")
        got = value(text) if sep else None
        if got is None or not head.strip().isdigit():
            raise UserError(f"{flag} {spec!r} must be {form}")
        frame = int(head)
        if frames is not None and frame >= frames:
            raise UserError(f"{flag} {spec!r}: frame {frame} is past the output's last frame ({frames - 1})")
        if frame in keys:
            raise UserError(f"{flag} gives frame {frame} twice; give each frame once")
        keys[frame] = got
    keys.setdefault(0, first)
    return dict(sorted(keys.items()))


def parse_prompt_at(specs: tuple[str, ...], frames: int | None, prompt: str) -> dict[int, str]:
    """``("0=a fox", "24=a fox at night")`` → {0: ..., 24: ...}; frame 0 defaults to ``prompt``."""
    form = "FRAME=TEXT with a frame number, e.g. 24='a fox at night'"
    return _keyframes("--prompt-at", specs, frames, prompt, lambda t: t.strip() or None, form)


def parse_strength_at(specs: tuple[str, ...], frames: int | None, strength: float) -> dict[int, float]:
    """``("0=0.3", "48=0.7")`` → {0: 0.3, 48: 0.7}; frame 0 defaults to ``strength``."""

    def value(text: str) -> float | None:
        try:
            s = float(text)
        except ValueError:
            return None
        return s if 0 < s <= 1 else None

    return _keyframes("--strength-at", specs, frames, strength, value, "FRAME=S with S in (0, 1], e.g. 48=0.7")


def _needs_torch(cfg: RenderConfig) -> str | None:
    """Why ``cfg`` cannot run on the OpenVINO backend (the message refusing ``--backend openvino``), or None."""
    m = cfg.model
    if m.compile:
        return "--compile is torch's compiler; --backend openvino compiles on its own (drop one)"
    if m.device not in ("auto", "cpu"):
        return f"--backend openvino runs on the CPU, not --device {m.device}; use --backend torch there"
    if m.dtype == "float16":
        return "--backend openvino computes in float32 or bfloat16 on a CPU; use --dtype bfloat16"
    if cfg.temporal.cross_frame != "off":
        return "--cross-frame changes the torch UNet's attention per call; use it with --backend torch"
    return None


def validate(cfg: RenderConfig) -> RenderConfig:
    """Check every value against its declaration, then the rules between options; a UserError naming the option
    and the fix. Returns ``cfg``."""
    for name, value in cfg.flat().items():
        SETTINGS[name].check(value)
    m, t, f = cfg.model, cfg.temporal, cfg.frames
    if m.device not in DEVICES and not m.device.startswith(("cuda:", "mps:")):
        raise UserError(f"--device must be one of {', '.join(DEVICES)} or cuda:N, got {m.device!r}")
    if m.fast and m.vae:
        raise UserError("--fast swaps the VAE for TAESD; it cannot be combined with --vae (pick one)")
    needs_torch = _needs_torch(cfg)
    if needs_torch and m.backend == "openvino":
        raise UserError(needs_torch)
    if needs_torch and m.backend == "auto":
        cfg = cfg.replace(backend="torch")  # what auto means here, recorded as such
    if m.model is not None and not m.model:
        raise UserError("--model is empty; give a preset name (see `lcm-video models`), hub id or path")
    if t.overlap is not None and t.context is not None and t.overlap >= t.context:
        raise UserError(f"--overlap ({t.overlap}) must be smaller than --context ({t.context})")
    if cfg.command == STYLIZE:
        if f.end is not None and f.end <= f.start:
            raise UserError(f"--end ({f.end:g} s) must be after --start ({f.start:g} s)")
        if m.motion_adapter is not None and t.window is not None:
            raise UserError("--window is for the 2D UNet; with --motion-adapter the window is --context")
        if m.motion_adapter is None:
            for name in ("context", "overlap"):
                if getattr(t, name) is not None:
                    raise UserError(f"--{name} applies to motion-aware stylise only; add --motion-adapter or drop it")
        parse_prompt_at(cfg.prompt.prompt_at, None, cfg.prompt.prompt)  # the frame range once the source is known
        parse_strength_at(cfg.sampling.strength_at, None, cfg.sampling.strength)
        if cfg.sampling.strength_at and m.motion_adapter is not None:
            raise UserError("--strength-at needs one timestep per frame: not with --motion-adapter (drop one)")
    else:
        parse_prompt_at(cfg.prompt.prompt_at, f.frames, cfg.prompt.prompt)
    return cfg
