"""The toy video world: seeded 16-frame clips of the toy shapes that move, stay still, grow or shrink, over plain and
textured backgrounds, and camera pans over textures, with captions that say the motion. Numpy and PIL only.

Captions (the image world's caption, then the motion; a still clip keeps the image caption):

    a red circle on a blue background moving left              moving: left, right, up, down, or two of them
    a red circle on a blue background moving up left quickly   speed words: "slowly", none, "quickly"
    a green square on a textured background growing            "growing" / "shrinking" (the centre stays)
    a yellow triangle on a purple background                   still
    a texture panning left                                     the camera pans: the picture moves the other way
    a red circle on a textured background panning right        the camera follows the shape: only the texture moves

Why the motion comes last: the toy text encoder is causal (CLIP's), so a word changes the states of the words after
it and never those before. Said last, the motion leaves the image caption's states exactly as the image model learnt
them. Said in the middle ("a red circle moving left on a blue background"), the frozen toy-teacher drew the asked
picture in 16 % of frames against 64 % with the motion last and 74 % for the image caption alone (8 held-out moving
prompts, 64 px, the untrained motion module, DDIM 25).

"Panning left" is the camera turning left, so the scene slides right in the frame (film usage).

Motion is said in shares of the frame side per frame (``SPEEDS``), so a clip drawn at 64 px and one at 128 px show the
same motion, 2x the pixels a frame at 128. Frames are drawn at ``SUPERSAMPLE`` times the size and area-averaged down:
a shape moving 0.8 px a frame then moves smoothly instead of in whole-pixel jumps.

The motion words are appended to the toy vocabulary (``VIDEO_WORDS`` = ``world.WORDS`` + ``MOTION_WORDS``, in that
order): the toy models' tokenizer gets them as added tokens after its 580 ids (``models.tiny`` / textual inversion), so
every caption of the image world keeps its token ids.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace

import numpy as np

from .world import COLOURS, SHAPES, WORDS, Scene, _a, draw, smooth_texture

FRAMES = 16
DIRECTIONS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
    "up left": (-1, -1),
    "up right": (1, -1),
    "down left": (-1, 1),
    "down right": (1, 1),
}
"""Direction phrase → unit step (x right, y down, image axes)."""
SPEEDS: dict[str, float] = {"slowly": 0.012, "": 0.02, "quickly": 0.028}
"""Speed word → shift a frame as a share of the side (along each moving axis): 1.5, 2.6, 3.6 px a frame at 128 px,
0.8, 1.3, 1.8 at 64 px (0.1-0.22 of a latent cell). Over 16 frames the fastest travels 0.42 of the side along an
axis, which the shape's free range (``MOVING_RADIUS``: 0.48 of the side at least) still holds."""
GROWTH = 1.7
"""A growing shape's radius ends this many times its first (a shrinking one's starts so), geometric in time."""
MOVING_RADIUS = (0.2, 0.06)
"""Radius of a moving shape as a share of the side: 0.2 + 0.06·U, the smaller end of the image world's range
(``world.RADIUS``, 0.22 + 0.14·U), so a fast shape crosses a third of the frame and stays whole in it."""
MOTION_WORDS = ("moving", "left", "right", "up", "down", "slowly", "quickly", "growing", "shrinking", "panning")
"""The words clips add to the toy captions, in the order their ids are appended to the toy tokenizer's."""
VIDEO_WORDS = (*WORDS, *MOTION_WORDS)
KINDS = ("move", "still", "grow", "shrink", "pan")
KIND_WEIGHTS = (0.55, 0.15, 0.1, 0.1, 0.1)
SUPERSAMPLE = 2


@dataclass(frozen=True)
class ClipSpec:
    """One toy clip: ``scene`` (sizes and positions in pixels at the clip's size) in its first frame, and how it
    changes. ``kind``: move / still / grow / shrink / pan; ``step``: the shape's shift a frame in pixels (move), or the
    camera's (pan: the scene moves by ``-step``); ``growth``: the radius' factor a frame; ``shape_in_pan``: whether a
    pan has a shape (fixed in the frame, the camera following it) or is a plain texture."""

    scene: Scene
    kind: str
    direction: str = ""
    speed: str = ""
    step: tuple[float, float] = (0.0, 0.0)
    growth: float = 1.0
    shape_in_pan: bool = True
    frames: int = FRAMES
    size: int = 64

    @property
    def caption(self) -> str:
        s = self.scene
        speed = f" {self.speed}" if self.speed else ""
        if self.kind == "pan":
            if not self.shape_in_pan:
                return f"a texture panning {self.direction}"
            return f"{_a(s.colour)} {s.colour} {s.shape} on a textured background panning {self.direction}"
        what = {"move": f" moving {self.direction}{speed}", "grow": " growing", "shrink": " shrinking"}
        return f"{_a(s.colour)} {s.colour} {s.shape} on {_a(s.background)} {s.background} background" + what.get(
            self.kind, ""
        )

    def scene_at(self, k: int) -> Scene:
        """The scene of frame ``k`` (pixels at ``size``; for a pan the shape's place in the frame)."""
        s = self.scene
        if self.kind == "move":
            return replace(s, cx=s.cx + k * self.step[0], cy=s.cy + k * self.step[1])
        if self.kind in ("grow", "shrink"):
            return replace(s, r=s.r * self.growth**k)
        return s

    def centres(self) -> np.ndarray:
        """float (frames, 2): the shape's centre (x, y) in pixels, frame by frame (for a pan, fixed in the frame)."""
        return np.array([[self.scene_at(k).cx, self.scene_at(k).cy] for k in range(self.frames)])

    def scene_shift(self) -> np.ndarray:
        """float (frames, 2): how far the picture content (background included) has moved at each frame, pixels."""
        k = np.arange(self.frames)[:, None]
        if self.kind == "move":
            return k * np.array(self.step)
        if self.kind == "pan":
            return -k * np.array(self.step)
        return np.zeros((self.frames, 2))


def random_clip_spec(rng: np.random.Generator, size: int = 64, frames: int = FRAMES, spread: float = 1.0) -> ClipSpec:
    """A random clip of the toy video world at ``size`` px: every draw from ``rng``, so a seed gives one clip.
    ``spread``: the share of a moving shape's free start range it starts in, around the range's middle (1: anywhere
    its path stays inside the frame; smaller: the path nearer the one centred on the frame, so a caption says more
    of where the shape is in each frame)."""
    kind = KINDS[rng.choice(len(KINDS), p=KIND_WEIGHTS)]
    shape = SHAPES[rng.integers(len(SHAPES))]
    colour = list(COLOURS)[rng.integers(len(COLOURS))]
    backgrounds = [c for c in COLOURS if c != colour] + ["textured"]
    background = "textured" if kind == "pan" else backgrounds[rng.integers(len(backgrounds))]
    direction = list(DIRECTIONS)[rng.integers(len(DIRECTIONS))] if kind in ("move", "pan") else ""
    speed = list(SPEEDS)[rng.integers(len(SPEEDS))] if kind in ("move", "pan") else ""
    unit = np.array(DIRECTIONS.get(direction, (0, 0)), float)
    step = unit * SPEEDS.get(speed, 0.0) * size
    growth = 1.0
    if kind == "move":
        r = size * (MOVING_RADIUS[0] + MOVING_RADIUS[1] * rng.random())
        travel = step * (frames - 1)
        lo = np.maximum(r, r - travel)  # the whole path inside the frame
        hi = np.minimum(size - r, size - r - travel)
        cx, cy = (lo + (hi - lo) * (0.5 - spread / 2 + spread * rng.random(2))).tolist()  # spread 1: lo + (hi-lo)·U
    else:
        # still / grow / shrink: the largest radius within the image world's range, the centre keeping it inside
        top = size * (0.22 + 0.14 * rng.random())
        r = {"grow": top / GROWTH}.get(kind, top)
        growth = {"grow": GROWTH, "shrink": 1 / GROWTH}.get(kind, 1.0) ** (1 / (frames - 1))
        cx, cy = (top + (size - 2 * top) * rng.random(2)).tolist()
    shape_in_pan = bool(rng.random() < 0.5) if kind == "pan" else True
    return ClipSpec(
        Scene(shape, colour, background, cx, cy, r),
        kind,
        direction,
        speed,
        (float(step[0]), float(step[1])),
        growth,
        shape_in_pan,
        frames,
        size,
    )


def draw_clip(spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    """uint8 (frames, size, size, 3): ``spec`` drawn at ``SUPERSAMPLE`` x and area-averaged down; ``rng`` draws the
    texture (a textured clip's background is one texture, fixed, or for a pan the frame's window sliding on it)."""
    from PIL import Image

    n, size, ss = spec.frames, spec.size, SUPERSAMPLE
    big = size * ss
    s = spec.scene
    shift = spec.scene_shift() * ss  # pixels at the drawing size
    if spec.kind == "pan":
        margin = int(np.ceil(np.abs(shift).max())) + 1
        tex = smooth_texture(big + 2 * margin, rng)
    else:
        margin = 0
        tex = smooth_texture(big, rng) if s.background == "textured" else None
    out = []
    for k in range(n):
        sc = spec.scene_at(k)
        sc = replace(sc, cx=sc.cx * ss, cy=sc.cy * ss, r=sc.r * ss)
        if spec.kind == "pan":
            # the window of the frame on the big texture: the camera moves by +step, the texture by -step
            x0 = margin - int(round(shift[k, 0]))
            y0 = margin - int(round(shift[k, 1]))
            window = np.ascontiguousarray(tex[y0 : y0 + big, x0 : x0 + big])
            if spec.shape_in_pan:
                frame = draw(sc, big, window)
            else:
                frame = window
        else:
            frame = draw(sc, big, tex)
        out.append(np.asarray(Image.fromarray(frame).resize((size, size), Image.Resampling.BOX)))
    return np.stack(out)


def random_clip(rng: np.random.Generator, size: int = 64, frames: int = FRAMES) -> tuple[np.ndarray, ClipSpec]:
    """A random clip, drawn: uint8 (frames, size, size, 3) and its spec (``spec.caption`` says what it shows)."""
    spec = random_clip_spec(rng, size, frames)
    return draw_clip(spec, rng), spec


OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}


def reversed_spec(spec: ClipSpec) -> ClipSpec:
    """The spec of ``spec``'s clip played backwards (frames ``[::-1]``): the other direction, growing ↔ shrinking,
    starting from the last frame. A free, exact augmentation of pre-encoded clips: reversing the latents' frames."""
    last = spec.scene_at(spec.frames - 1)
    direction = " ".join(OPPOSITE[w] for w in spec.direction.split())
    step = (-spec.step[0], -spec.step[1])
    kind = {"grow": "shrink", "shrink": "grow"}.get(spec.kind, spec.kind)
    if spec.kind == "pan":
        last = spec.scene  # the shape is fixed in the frame; the texture slides the other way
    return replace(spec, scene=last, kind=kind, direction=direction, step=step, growth=1 / spec.growth)


def held_out(caption: str) -> bool:
    """Whether ``caption`` is one of the tenth of captions kept out of training (a stable hash of the text), so an
    evaluation can use prompts the motion module never saw."""
    return zlib.crc32(caption.encode()) % 10 == 0


def training_clip(
    rng: np.random.Generator, size: int = 64, frames: int = FRAMES, spread: float = 1.0
) -> tuple[np.ndarray, ClipSpec]:
    """A random clip whose caption is not held out (``held_out``): redrawn until one is (``spread``: as
    ``random_clip_spec``)."""
    while True:
        spec = random_clip_spec(rng, size, frames, spread)
        if not held_out(spec.caption):
            return draw_clip(spec, rng), spec
