"""The config parts of a render: what to render, with which models, how to sample, how frames hold together, which
frames, and how to write them. A part's field is the option's declaration (:func:`lcm_video.options.option`): its name
is the YAML key and keyword argument, its type the option's kind, and its default, limits, help and commands are
stated there and nowhere else. No torch."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ..choices import (
    BACKENDS,
    CFG_TYPES,
    CROSS_FRAME,
    DEFAULT_CONTEXT,
    DEFAULT_WINDOW,
    DTYPES,
    FUSE,
    QUANTIZE,
    RENOISE,
    SCHEDULERS,
    WARP,
)
from ..models.presets import DEFAULT_MODEL, PRESETS
from ..options import BATCH, GENERATE, RERUN, STYLIZE, Option, option, options_of
from .control import ControlConfig
from .style import StyleConfig


def _side_names(side: int) -> str:
    """The presets of one side, by name (a whole family's by its name: ``the sdxl presets but sdxl-turbo``)."""
    names = [n for n, p in PRESETS.items() if p.size == side]
    for family in ("sdxl",):
        members = [n for n, p in PRESETS.items() if p.family == family and not p.base.startswith("builtin:")]
        if len([n for n in members if n in names]) > 2:
            but = [n for n in members if n not in names]
            names = [n for n in names if n not in members]
            names.insert(0, f"the {family} presets" + (f" but {' and '.join(but)}" if but else ""))
    return " and ".join(names)


_SMALL_SIDES = ", ".join(
    f"{side} for {_side_names(side)}" for side in sorted({p.size for p in PRESETS.values()} - {512})
)  # generate's default size per preset, for --width's help: "64 for tiny and tiny-lora, 128 for ..."


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
    prompt_at: tuple[tuple[int, str], ...] = option(
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
        "VAE override: hub id or directory (AutoencoderKL or AutoencoderTiny; taesd / taesdxl for speed)",
        derived="the model's",
        metavar="ID",
        doc="`AutoencoderKL` or `AutoencoderTiny` hub id or directory; `taesd` (`taesdxl` for SDXL) for speed; "
        "`sdxl-vae-fp16-fix` keeps an SDXL VAE in float16",
    )
    fast: bool = option(
        False,
        "TAESD instead of the full VAE: ~2x faster, slightly softer",
        doc="TAESD instead of the full VAE (same as `--vae taesd`; TAESDXL for an SDXL preset; the toy's own TAESD, "
        "trained here, for the toy presets): the VAE costs as much as the 4 UNet steps, TAESD ~1/10 of it; slightly "
        "softer detail",
    )
    motion_adapter: str | None = option(
        None,
        "motion module: preset (animatelcm, animatediff-v1-5-2, tiny), hub id, directory or file",
        derived={
            STYLIZE: "none",
            GENERATE: "animatelcm (animatediff-sdxl-beta with SDXL presets, tiny with the tiny models, toy-motion / "
            "toy-motion-teacher with toy / toy-teacher)",
        },
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
    quantize: str = option(
        "none",
        "none, or int8 (--backend openvino): the UNet quantised by NNCF on the render's first frames",
        choices=QUANTIZE,
        metavar="Q",
        doc="`none`, or `int8` (`--backend openvino`): the UNet in 8 bits by NNCF, calibrated on its inputs while the "
        "render's first window runs in float (live: toy frames, or the source's with `--calibrate source`); cached "
        "by their digest; VAE in float; `int8` extra",
    )
    threads: int | None = option(
        None,
        "CPU threads torch computes with",
        derived="1 for the tiny and toy models, else torch's (one per core)",
        lo=1,
        metavar="N",
        doc="CPU threads torch computes with. Default: 1 for the small models built or trained here (`tiny`, "
        "`tiny-lora`, `toy`, `toy-teacher`: their ops are so short that a second thread mostly waits, and two "
        "threads beside any other work ran 4-8× slower on 2 cores), else torch's (one per core: SD1.5-sized ops "
        'gain from two); `--threads 1` also suits a shared or busy machine (BENCHMARKS.md, "Threads on 2 cores")',
    )


@dataclass(frozen=True)
class SamplingConfig:
    """The few-step run of each frame."""

    scheduler: str | None = option(
        None,
        "few-step method: lcm, tcd, ddim-trailing or euler-trailing",
        derived="the model preset's, lcm for other models",
        choices=SCHEDULERS,
        metavar="|".join(SCHEDULERS),
        doc="the few-step method's update: `lcm` (latent consistency), `tcd` (trajectory consistency, its gamma is "
        "`--eta`), `ddim-trailing` (Hyper-SD, PCM), `euler-trailing` (AnimateDiff-Lightning); each preset names the "
        "one its weights were distilled for. Keyed noise, blending and windows work the same with every method",
    )
    steps: int | None = option(
        None,
        "denoising steps per frame",
        derived="the model preset's, 4 for LCM",
        lo=1,
        hi=50,
        hint="; few-step models work best with the steps they were distilled for",
        metavar="N",
        doc="denoising steps per frame. `lcm`: exactly N at any strength (generate: timesteps 999, 759, 499, 259); "
        "`tcd`, `ddim-trailing`, `euler-trailing`: the last int(N × strength) of an N-step schedule, as diffusers' "
        "img2img pipelines run them (a 4-step model at strength 0.5 runs 2)",
    )
    eta: float | None = option(
        None,
        "TCD's gamma (stochasticity per step) or DDIM's eta",
        derived="the model preset's, else 0.3 for TCD, 0 for DDIM",
        lo=0.0,
        hi=1.0,
        hint="; TCD's authors suggest 0.3, higher with more steps",
        metavar="E",
        doc="`tcd`: gamma, the share of each step re-noised with keyed noise (0 deterministic, 1 fully stochastic; "
        "0.3 is the TCD card's, raise it with more steps); `ddim-trailing`: DDIM's eta. Not for `lcm` and "
        "`euler-trailing`",
    )
    strength: float = option(
        0.5,
        "how far from the source, in (0, 1]",
        commands=(STYLIZE,),
        lo=0.0,
        hi=1.0,
        lo_open=True,
        hint="; 0.3-0.6 keeps the source's layout",
        metavar="S",
        doc="in (0, 1]: how far from the source; 0.3–0.6 keeps the layout, 1 ignores it",
    )
    strength_at: tuple[tuple[int, float], ...] = option(
        (),
        "strength from output frame FRAME on, interpolated from the previous key; repeatable",
        commands=(STYLIZE,),
        lo=0.0,
        lo_open=True,
        hi=1.0,
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
    cfg_type: str = option(
        "full",
        "classifier-free guidance's negative branch: full (a UNet pass a step), self or initialize "
        "(StreamDiffusion's residual CFG: none, or one at the first step)",
        choices=CFG_TYPES,
        metavar="|".join(CFG_TYPES),
        doc="where classifier-free guidance runs (`--guidance` > 1 without a w-embedding): `full` runs the negative "
        "prompt through the UNet at every step (twice the UNet batch); `self` (StreamDiffusion's residual CFG) puts "
        "in its place the residual noise of each step's latents against the source's (text-to-video: against the x0 "
        "they were made from), so the UNet sees the conditional branch only and the picture is pushed away from the "
        "source (on the toy at guidance 2 a white background turns grey); "
        "`initialize` runs the negative pass at the first step only and takes its x0 as the reference after it. "
        "No effect where no classifier-free guidance runs",
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
    "control": ControlConfig,
    "style": StyleConfig,
}

SETTINGS: dict[str, Option] = {o.name: o for name, part in PARTS.items() for o in options_of(part, name)}
"""Every render setting by name (the YAML key / keyword argument), across all parts."""
