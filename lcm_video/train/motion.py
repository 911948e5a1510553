"""Training an AnimateDiff motion module on the toy video world (``toy/video.py``), the toy-teacher's spatial weights
frozen, as AnimateDiff trains one; plain functions over tensors, seeded, resumable bit for bit.

One step (epsilon prediction on the teacher's DDPM schedule, the teacher's own loss, now over clips):

    z    = (μ + σ·n) · scaling         a pre-encoded clip's latents, (b, f, 4, h, w); a coin plays it backwards
    x_t  = √ᾱ_t·z + √(1−ᾱ_t)·ε         one t per clip, ε per frame
    loss = ‖ε_θ(x_t, t, text) − ε‖²    UNetMotionModel: the frozen toy-teacher UNet + the motion module

What learns: the motion module (its output projections start at zero, AnimateDiff's init, so step 0 is the image
model frame by frame) and one embedding per motion word (``toy.video.MOTION_WORDS``, textual-inversion style). A motion
module has no text cross-attention: the caption reaches it only through the frozen spatial UNet's features, and a word
the text encoder never learnt reads as loose bytes. So each motion word is an added token with its own trained
embedding, appended after the toy tokenizer's 580 ids in ``MOTION_WORDS`` order (exactly what diffusers'
``load_textual_inversion`` does, which is how the words are loaded beside the adapter: ``WORDS_FILE``); every other
weight, the existing word embeddings included, stays frozen, so a prompt without a motion word keeps its ids and its
embedding. 10 % of captions are dropped to "" (the teacher's classifier-free guidance share).

Every random draw of a step (clips, coins, t, ε, posterior samples) comes from a generator that is a function of
(seed, step), so a run resumed from a checkpoint continues the very same loss curve (same torch thread count).
"""

from __future__ import annotations

import copy
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..models.loading import MOTION_LORA_FILE, MOTION_WORDS_FILE
from ..models.presets import WEIGHTS
from ..toy import video as toy_video
from .clips import CAPTION_DROP, ClipPool, draw_batch, encode_clips, encode_text, make_pool  # noqa: F401 (re-exported)
from .loop import atomic_save, ema_decay, keep_last, step_generator
from .motion_loss import (  # noqa: F401 (re-exported: the trainer's callers reach the loss through this module)
    CONTRAST_MARGIN,
    CONTRAST_MIN_T,
    add_noise,
    image_caption,
    latent_track,
    loss_weights,
    motion_loss,
    predict_eps,
    tracked,
    word_separation,
)

TEACHER = WEIGHTS / "toy-teacher"
WORDS_FILE = MOTION_WORDS_FILE  # the motion words' embeddings beside the adapter (``models.loading.load_motion_words``)
# The spatial cross-attention projections a ``--spatial-lora`` adapts (never the motion modules' own attentions).
SPATIAL_CROSS = (
    r"^(down_blocks\.\d+\.|up_blocks\.\d+\.|mid_block\.)attentions\.\d+\.transformer_blocks\.\d+\.attn2\."
    r"(to_q|to_k|to_v|to_out\.0)$"
)

# The text encoder's layers a ``--text-lora`` adapts.
TEXT_LORA = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


# --------------------------------------------------------------------------------------------------------------------
# The models.


def toy_motion_adapter(
    seed: int = 0, block_out_channels: tuple[int, ...] = (32, 64, 128), heads: int = 8, max_frames: int = 32
):
    """A ``MotionAdapter`` for the toy-teacher's UNet (1 layer a block, as its UNet; a mid-block motion module as
    AnimateDiff v2; 8 heads, GroupNorm over 16 groups as the UNet's), seeded, with every motion transformer's output
    projection at zero (AnimateDiff's ``zero_initialize``), so untrained it leaves each frame as the image model
    draws it. 1.8 M parameters, 7 MB in float32."""
    from diffusers import MotionAdapter

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        adapter = MotionAdapter(
            block_out_channels=tuple(block_out_channels),
            motion_layers_per_block=1,
            motion_num_attention_heads=heads,
            motion_norm_num_groups=16,
            motion_max_seq_length=max_frames,
            use_motion_mid_block=True,
        )
    zero_motion_outputs(adapter)
    return adapter.eval()


def zero_motion_outputs(module: torch.nn.Module) -> int:
    """Zero the ``proj_out`` of every motion transformer under ``module`` (an adapter or a ``UNetMotionModel``);
    returns how many. Each is a residual branch, so the module is then an identity."""
    n = 0
    for name, sub in module.named_modules():
        if "motion_modules" in name and name.endswith("proj_out") and isinstance(sub, torch.nn.Linear):
            torch.nn.init.zeros_(sub.weight)
            torch.nn.init.zeros_(sub.bias)
            n += 1
    return n


def add_motion_words(tokenizer, words: tuple[str, ...] = toy_video.MOTION_WORDS) -> list[int]:
    """Append ``words`` to ``tokenizer`` as added tokens, one by one (diffusers' ``load_textual_inversion`` order);
    returns their ids (580, 581, … for the toy tokenizer)."""
    ids = []
    for word in words:
        tokenizer.add_tokens(word)
        ids.append(tokenizer.convert_tokens_to_ids(word))
    return ids


class AppendedEmbedding(torch.nn.Module):
    """A token embedding whose first rows are frozen (``base``, (V, d)) and whose appended rows (``words``, (n, d))
    learn: ids < V read the frozen table, ids V … V+n−1 the new words."""

    def __init__(self, base: torch.Tensor, words: torch.Tensor):
        super().__init__()
        self.register_buffer("base", base.detach().clone(), persistent=False)
        self.words = torch.nn.Parameter(words.detach().clone())

    @property
    def weight(self) -> torch.Tensor:
        return torch.cat([self.base, self.words])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight)


def init_word_embeddings(base: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """float (n, d): the mean of ``base``'s rows plus seeded noise of their per-dimension std (so each word starts
    as an average, distinct token; textual inversion starts from a word's embedding)."""
    gen = torch.Generator().manual_seed(seed)
    return base.mean(0) + base.std(0) * torch.randn(n, base.shape[1], generator=gen)


@dataclass
class ToyParts:
    """The frozen toy-teacher pieces and the trainable ones: ``unet`` (a ``UNetMotionModel``: frozen spatial layers,
    trainable ``motion_modules``), ``text_encoder`` with an ``AppendedEmbedding`` (its ``words`` trainable),
    ``tokenizer`` (motion words added), ``vae`` (frozen), ``alphas_cumprod`` (float (1000,))."""

    unet: Any
    text_encoder: Any
    tokenizer: Any
    vae: Any
    alphas_cumprod: torch.Tensor
    word_ids: list[int] = field(default_factory=list)

    def motion_params(self) -> dict[str, torch.nn.Parameter]:
        """What learns besides the words: the motion modules (and a spatial LoRA) by their UNet names, a text-encoder
        LoRA as ``text_encoder.`` + its names."""
        params = {n: p for n, p in self.unet.named_parameters() if p.requires_grad}
        for n, p in self.text_encoder.named_parameters():
            if p.requires_grad and "lora_" in n:
                params["text_encoder." + n] = p
        return params

    @property
    def words(self) -> torch.nn.Parameter:
        return self.text_encoder.get_input_embeddings().words


def load_toy_parts(
    adapter, teacher: str | os.PathLike = TEACHER, seed: int = 0, lora_rank: int = 0, text_lora_rank: int = 0
) -> ToyParts:
    """The toy-teacher (float32) with ``adapter`` inserted as a ``UNetMotionModel`` and the motion words appended;
    ``lora_rank`` > 0 adds a LoRA of that rank (peft, B at zero: an identity at step 0) on the spatial
    cross-attention (``SPATIAL_CROSS``), trained with the motion module: a motion module has no text input of its
    own, and the frozen cross-attention barely lets a new word move the features it reads (at step 1800 without it,
    6 of 8 held-out moving clips drifted the same way whatever their caption said). ``text_lora_rank`` > 0 adds
    one on the text encoder's attention and MLP (``TEXT_LORA``): the frozen encoder passes a new word on faintly
    (measured after 6800 steps: "left" and "right" moved its states by 0.18 at the word and 0.02-0.05 after it, a
    colour word by 0.6-1.0)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel, UNetMotionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    teacher = Path(teacher)
    unet2d = UNet2DConditionModel.from_pretrained(teacher / "unet", dtype=torch.float32)
    unet = UNetMotionModel.from_unet2d(unet2d, adapter)
    unet.freeze_unet2d_params()  # all but the motion modules
    if lora_rank:
        from peft import LoraConfig

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            unet.add_adapter(LoraConfig(r=lora_rank, lora_alpha=lora_rank, target_modules=SPATIAL_CROSS))
        for name, p in unet.named_parameters():  # peft leaves only its own layers trainable
            p.requires_grad_("motion_modules" in name or "lora_" in name)
    unet.eval()  # no dropout or batch statistics anywhere: eval mode changes nothing but states intent
    text = CLIPTextModel.from_pretrained(teacher / "text_encoder", dtype=torch.float32).eval().requires_grad_(False)
    tok = CLIPTokenizer.from_pretrained(teacher / "tokenizer")
    base = text.get_input_embeddings().weight.detach()
    ids = add_motion_words(tok)
    if ids != list(range(len(base), len(base) + len(ids))):
        raise ValueError(f"motion words got ids {ids}, expected them appended after {len(base)}")
    text.set_input_embeddings(AppendedEmbedding(base, init_word_embeddings(base, len(ids), seed)))
    if text_lora_rank:
        from peft import LoraConfig, inject_adapter_in_model

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            # peft's own injection: transformers' ``add_adapter`` wants a newer peft than diffusers' pin
            cfg = LoraConfig(r=text_lora_rank, lora_alpha=text_lora_rank, target_modules=TEXT_LORA)
            inject_adapter_in_model(cfg, text)
        for name, p in text.named_parameters():
            p.requires_grad_("lora_" in name or name.endswith("words"))
    vae = AutoencoderKL.from_pretrained(teacher / "vae", dtype=torch.float32).eval().requires_grad_(False)
    acp = DDPMScheduler.from_pretrained(teacher / "scheduler").alphas_cumprod.float()
    return ToyParts(unet, text, tok, vae, acp, ids)


# --------------------------------------------------------------------------------------------------------------------
# The trainer: optimiser, EMA, checkpoints.


@dataclass(frozen=True)
class MotionTrainConfig:
    """What a run trains with; all but ``steps``/``save_every`` must match to resume (the checkpoint's fingerprint)."""

    size: int = 64
    batch: int = 4
    pool: int = 1500
    lr: float = 5e-4
    words_lr: float = 5e-3
    warmup: int = 100
    weight_decay: float = 1e-2
    ema: float = 0.999
    seed: int = 0
    heads: int = 8
    spatial_lora: int = 0
    text_lora: int = 0
    snr_cap: float = 0.0
    contrast: float = 0.0
    track: float = 0.0
    separate: float = 0.0
    still: float = 0.0
    init: str = ""
    spread: float = 1.0
    steps: int = 6000
    save_every: int = 100

    def fingerprint(self) -> dict[str, Any]:
        # fields added later are left out at their defaults, so older runs' checkpoints still resume
        later = {
            "snr_cap": 0.0,
            "init": "",
            "text_lora": 0,
            "contrast": 0.0,
            "spread": 1.0,
            "track": 0.0,
            "separate": 0.0,
            "still": 0.0,
        }
        return {
            k: v
            for k, v in self.__dict__.items()
            if k not in ("steps", "save_every") and not (k in later and v == later[k])
        }


class MotionTrainer:
    """The live motion module and word embeddings, their AdamW, their EMA (what is exported), the loss history."""

    def __init__(self, parts: ToyParts, cfg: MotionTrainConfig):
        self.parts, self.cfg = parts, cfg
        self.params = parts.motion_params()
        self.optimizer = torch.optim.AdamW(
            [
                {"params": list(self.params.values()), "lr": cfg.lr, "weight_decay": cfg.weight_decay},
                {"params": [parts.words], "lr": cfg.words_lr, "weight_decay": 0.0},
            ]
        )
        self.ema = {n: p.detach().clone() for n, p in self.params.items()}
        self.ema_words = parts.words.detach().clone()
        self.step = 0
        self.losses: list[float] = []
        self.scaling = float(parts.vae.config.scaling_factor)
        # ``separate``: the text encoder as it was at step 0 (its LoRA at identity), what an image caption must keep
        self.reference_text = copy.deepcopy(parts.text_encoder).requires_grad_(False) if cfg.separate > 0 else None

    def separation(self, caps: list[str], states: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """``--separate M``: the hinge (``word_separation``) between the text states of ``caps`` and of their reverses
        (``states``, ``other``: float (b, 77, d)) plus 10 × the mean squared change of the image captions' states from
        the step-0 encoder's (prompts without a motion word keep their states)."""
        parts = self.parts
        lengths = torch.tensor([len(parts.tokenizer(c).input_ids) for c in caps])
        hinge = word_separation(states, other, lengths, self.cfg.separate)
        images = sorted({image_caption(c) for c in caps if c})
        if not images:
            return hinge
        now = encode_text(parts.text_encoder, parts.tokenizer, images)
        with torch.no_grad():
            before = encode_text(self.reference_text, parts.tokenizer, images)
        return hinge + 10 * (now - before).pow(2).mean()

    def train_step(self, pool: ClipPool) -> float:
        """One optimiser step on a batch drawn by ``step_generator(seed, step)``; returns the loss."""
        cfg, parts = self.cfg, self.parts
        gen = step_generator(cfg.seed, self.step)
        if cfg.contrast > 0 or cfg.separate > 0:
            z, caps, opposite = draw_batch(pool, cfg.batch, self.scaling, gen, with_opposite=True)
            both = encode_text(parts.text_encoder, parts.tokenizer, caps + opposite)
            states, other = both[: len(caps)], both[len(caps) :]
        else:
            z, caps = draw_batch(pool, cfg.batch, self.scaling, gen)
            states, other = encode_text(parts.text_encoder, parts.tokenizer, caps), None
        loss = motion_loss(
            parts.unet,
            z,
            states,
            gen,
            parts.alphas_cumprod,
            cfg.snr_cap,
            other,
            cfg.contrast,
            cfg.track,
            tracked(caps),
            cfg.still,
        )
        if cfg.separate > 0:
            loss = loss + self.separation(caps, states, other)
        warm = min(1.0, (self.step + 1) / cfg.warmup)  # linear warm-up, then constant: a run can be extended
        for group, base in zip(self.optimizer.param_groups, (cfg.lr, cfg.words_lr), strict=True):
            group["lr"] = base * warm
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([*self.params.values(), parts.words], 1.0)
        self.optimizer.step()
        self.step += 1
        decay = ema_decay(self.step, cfg.ema)
        with torch.no_grad():
            for n, p in self.params.items():
                self.ema[n].lerp_(p, 1 - decay)
            self.ema_words.lerp_(parts.words, 1 - decay)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"the loss became {value} at step {self.step}")
        self.losses.append(value)
        return value

    def start_from(self, state: dict[str, Any]) -> None:
        """Start a new run from another run's checkpoint ``state``: its EMA motion module (and LoRA) and word
        embeddings become this run's weights and EMA; optimiser, step and losses start afresh (a second stage at
        another size or loss, as AnimateDiff raises its resolution in stages)."""
        # a text-encoder LoRA added in this stage starts at identity (its B at zero)
        missing = sorted(n for n in set(self.params) - set(state["ema"]) if not n.startswith("text_encoder."))
        if missing:
            raise ValueError(f"the --init checkpoint lacks {missing[:3]} (trained with another --spatial-lora?)")
        with torch.no_grad():
            for n, p in self.params.items():
                if n in state["ema"]:
                    p.copy_(state["ema"][n])
                    self.ema[n].copy_(state["ema"][n])
            self.parts.words.copy_(state["ema_words"])
            self.ema_words.copy_(state["ema_words"])

    # Checkpoints ---------------------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "losses": list(self.losses),
            "config": self.cfg.fingerprint(),
            "motion": {n: p.detach().clone() for n, p in self.params.items()},
            "words": self.parts.words.detach().clone(),
            "ema": {n: v.clone() for n, v in self.ema.items()},
            "ema_words": self.ema_words.clone(),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        if state["config"] != self.cfg.fingerprint():
            mine = self.cfg.fingerprint()
            changed = sorted(k for k in mine if state["config"].get(k) != mine[k])
            raise ValueError(f"the checkpoint was made with other settings ({', '.join(changed)})")
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(state["motion"][n])
                self.ema[n].copy_(state["ema"][n])
            self.parts.words.copy_(state["words"])
            self.ema_words.copy_(state["ema_words"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.losses = int(state["step"]), list(state["losses"])

    def save_checkpoint(self, folder: Path, keep: int = 2) -> Path:
        """``folder/step_NNNNNN.pt``, written atomically (temporary name, then rename); all but the last ``keep``
        older ones removed."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"step_{self.step:06d}.pt"
        atomic_save(self.state(), path)
        keep_last(folder, keep)
        return path

    def export(self, folder: Path, ema: bool = True) -> Path:
        """The (EMA) motion module as a ``MotionAdapter`` folder with ``WORDS_FILE`` beside it, swapped in whole (a
        reader never sees half a folder): what ``load_models(..., motion_adapter=folder)`` loads."""
        from safetensors.torch import save_file

        weights = self.ema if ema else {n: p.detach() for n, p in self.params.items()}
        words = self.ema_words if ema else self.parts.words.detach()
        lora = {n: w for n, w in weights.items() if "lora_" in n}
        adapter = adapter_from(self.parts.unet, {n: w for n, w in weights.items() if "lora_" not in n})
        folder = Path(folder)
        tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        adapter.save_pretrained(tmp)
        vocab = toy_video.MOTION_WORDS
        save_file(
            {w: words[i].float().contiguous() for i, w in enumerate(vocab)},
            tmp / WORDS_FILE,
            metadata={"words": " ".join(vocab)},  # safetensors sorts its keys; the ids follow this order
        )
        if lora:  # diffusers' LoRA file format (what ``load_lora_weights`` reads): "unet." + peft's names
            save_file(
                {_lora_key(n): w.float().contiguous() for n, w in lora.items()},
                tmp / MOTION_LORA_FILE,
            )
        old = folder.with_name(f".{folder.name}.{os.getpid()}.old")
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
        return folder


def _lora_key(name: str) -> str:
    """A trained LoRA weight's name in diffusers' LoRA file (what ``load_lora_weights`` reads): the component
    (``unet.`` / ``text_encoder.``) + peft's name without its adapter name."""
    full = name if name.startswith("text_encoder.") else "unet." + name
    return full.replace(".default.", ".")


def adapter_from(unet, weights: dict[str, torch.Tensor]):
    """A ``MotionAdapter`` shaped like ``unet``'s motion modules, holding ``weights`` (names as in the UNet)."""
    from diffusers import MotionAdapter

    cfg = unet.config
    adapter = MotionAdapter(
        block_out_channels=tuple(cfg.block_out_channels),
        motion_layers_per_block=cfg.layers_per_block,
        motion_num_attention_heads=cfg.motion_num_attention_heads,
        motion_norm_num_groups=cfg.norm_num_groups,
        motion_max_seq_length=cfg.motion_max_seq_length,
        use_motion_mid_block=cfg.use_motion_mid_block,
    )
    missing, unexpected = adapter.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.endswith("pos_embed.pe")]  # fixed sinusoids, rebuilt from the config
    if missing or unexpected:
        raise ValueError(f"motion weights do not fit the adapter: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return adapter.eval()
