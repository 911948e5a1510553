"""The toy world: a captioned data set made in code, for training a small model here (no download) whose output
depends on its prompt and its input, so quality can be measured.

Images show one shape (circle, square, triangle) of one colour on a background that is a plain colour or a smooth
texture; captions say what is there ("a red circle on a blue background", "a green triangle on a textured
background"). Clips move the shape across the background. Smooth noise textures with varied colour statistics are
mixed in, captioned "a texture", so an autoencoder trained on the set also reconstructs ordinary frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (40, 180, 60),
    "blue": (40, 70, 220),
    "yellow": (240, 220, 40),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "orange": (245, 140, 30),
    "purple": (140, 50, 190),
}
SHAPES = ("circle", "square", "triangle")
WORDS = ("a", "an", "on", "background", "texture", "textured", *COLOURS, *SHAPES)
"""Every word of the captions: the toy text encoder's tokenizer (``models.tiny.toy_tokenizer()``) reads each as
one token."""


@dataclass(frozen=True)
class Scene:
    """One toy picture: a shape of a colour at (cx, cy) with radius r (pixels), on a background colour or a texture."""

    shape: str
    colour: str
    background: str  # a colour name, or "textured"
    cx: float
    cy: float
    r: float

    @property
    def caption(self) -> str:
        return f"{_a(self.colour)} {self.colour} {self.shape} on {_a(self.background)} {self.background} background"


def _a(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def smooth_texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 (size, size, 3): a few octaves of smooth value noise (coarse cells bicubic-upscaled, finer ones weaker)
    blending two random colours: soft gradients and blotches, a stand-in for the smooth regions of natural images."""
    from PIL import Image

    field = np.zeros((size, size), np.float32)
    cells, weight = int(rng.integers(2, 5)), 1.0
    while cells <= size // 2:
        coarse = (rng.random((cells, cells)) * 255).astype(np.uint8)
        up = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC), np.float32) / 255
        field += weight * up
        cells, weight = cells * 2, weight * 0.5
    field = (field - field.min()) / max(1e-6, float(field.max() - field.min()))
    a, b = rng.random(3), rng.random(3)
    img = a * (1 - field[..., None]) + b * field[..., None]
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


RADIUS = (0.22, 0.14)
"""Shape radius as a share of the side: 0.22 + 0.14·U[0, 1). Shapes span 3-6 latent cells, large enough that an 8x
autoencoder keeps a triangle's corners and a square's (at the first version's 0.15 + 0.15·U, a third of
reconstructed triangles read as circles)."""


def random_scene(rng: np.random.Generator, size: int, radius: tuple[float, float] = RADIUS) -> Scene:
    shape = SHAPES[rng.integers(len(SHAPES))]
    colour = list(COLOURS)[rng.integers(len(COLOURS))]
    backgrounds = [c for c in COLOURS if c != colour] + ["textured"]
    background = backgrounds[rng.integers(len(backgrounds))]
    r = size * (radius[0] + radius[1] * rng.random())
    cx, cy = (r + (size - 2 * r) * rng.random(2)).tolist()
    return Scene(shape, colour, background, cx, cy, r)


def draw(scene: Scene, size: int, background: np.ndarray | None = None) -> np.ndarray:
    """uint8 (size, size, 3) picture of ``scene`` (``background``: the texture for a textured scene)."""
    from PIL import Image, ImageDraw

    if scene.background == "textured":
        img = Image.fromarray(background)
    else:
        img = Image.new("RGB", (size, size), COLOURS[scene.background])
    pen = ImageDraw.Draw(img)
    x, y, r, fill = scene.cx, scene.cy, scene.r, COLOURS[scene.colour]
    if scene.shape == "circle":
        pen.ellipse((x - r, y - r, x + r, y + r), fill=fill)
    elif scene.shape == "square":
        h = r * 0.886  # the square of the circle's area, so shapes are about as large
        pen.rectangle((x - h, y - h, x + h, y + h), fill=fill)
    else:
        pen.polygon([(x, y - r), (x - r * 0.866, y + r * 0.5), (x + r * 0.866, y + r * 0.5)], fill=fill)
    return np.asarray(img)


def scene_picture(rng: np.random.Generator, size: int, radius: tuple[float, float] = RADIUS) -> tuple[np.ndarray, str]:
    """A random scene, drawn: uint8 (size, size, 3) and its caption."""
    scene = random_scene(rng, size, radius)
    tex = smooth_texture(size, rng) if scene.background == "textured" else None
    return draw(scene, size, tex), scene.caption


def random_picture(
    rng: np.random.Generator, size: int, textures: float = 0.2, radius: tuple[float, float] = RADIUS
) -> tuple[np.ndarray, str]:
    """A plain texture ("a texture") with probability ``textures``, else a random scene: the toy world's mix."""
    if rng.random() < textures:
        return smooth_texture(size, rng), "a texture"
    return scene_picture(rng, size, radius)


def make_toy_dataset(folder: str | Path, images: int, size: int = 64, seed: int = 0, textures: float = 0.2) -> Path:
    """Write ``images`` captioned PNGs (``textures`` of them plain textures) into ``folder``; the same files for the
    same arguments. Returns the folder, ready for ``lcm-video distill --data`` and the toy training script."""
    from PIL import Image

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(images):
        pixels, caption = random_picture(rng, size, textures)
        Image.fromarray(pixels).save(out / f"{i:06d}.png")
        (out / f"{i:06d}.txt").write_text(caption + "\n", encoding="utf-8")
    return out


def moving_clip(scene: Scene, frames: int, size: int, step: tuple[float, float], seed: int = 0) -> np.ndarray:
    """uint8 (frames, size, size, 3): ``scene``'s shape moving by ``step`` pixels a frame over a fixed background."""
    rng = np.random.default_rng(seed)
    tex = smooth_texture(size, rng) if scene.background == "textured" else None
    out = []
    for k in range(frames):
        moved = Scene(
            scene.shape, scene.colour, scene.background, scene.cx + k * step[0], scene.cy + k * step[1], scene.r
        )
        out.append(draw(moved, size, tex))
    return np.stack(out)
