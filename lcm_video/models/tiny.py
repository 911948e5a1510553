"""Random-weight models built in code, with the shapes of SD1.5's parts: the ``tiny`` presets (widths 8-64, seconds on
a CPU) and SD1.5-sized ones for benchmarks. The same seed gives the same weights; nothing is downloaded.

These are what the tests, the benchmarks and the offline quick start run on. Their output ignores the input (random
weights): fine for parity, speed and plumbing, useless for any quality figure.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, AutoencoderTiny, LCMScheduler, MotionAdapter, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer


def _byte_vocab() -> dict[str, int]:
    """CLIP's byte-level vocabulary without merges: 256 byte characters, the same with ``</w>``, start 512, end 513."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = [], 0
    for b in range(256):  # CLIP's byte → unicode table: printable bytes map to themselves, the rest above 255
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    chars.sort(key=lambda c: ord(c))
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": 256 + i for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": 512, "<|endoftext|>": 513})
    return vocab


def tiny_tokenizer(words: tuple[str, ...] = ()) -> CLIPTokenizer:
    """A byte-level CLIP tokenizer that works offline, with no files: 514 ids (start 512, end 513), and with ``words``
    (lower-case letters) each one more id from 514 on, made by BPE merges as CLIP's own vocabulary is, so a text
    encoder trained on a small captioned world reads its words whole; any other text falls back to bytes."""
    vocab = _byte_vocab()
    merges: list[tuple[str, str]] = []
    for word in words:
        # Each new merge ranks last, so it only fires once every earlier merge has been applied: the words made
        # before stay whole, and this one gets one merge per pass until it is a single token.
        while len(parts := _bpe(word, merges)) > 1:
            merges.append((parts[0], parts[1]))
            vocab.setdefault(parts[0] + parts[1], len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def toy_tokenizer() -> CLIPTokenizer:
    """The toy models' tokenizer: CLIP's byte-level BPE with one merged token per word of the toy world's captions."""
    from ..toy.world import WORDS

    return tiny_tokenizer(WORDS)


def _bpe(word: str, merges: list[tuple[str, str]]) -> list[str]:
    """CLIP's BPE on one word: the adjacent pair whose merge ranks first is joined, until none applies."""
    parts = [*word[:-1], word[-1] + "</w>"]
    rank = {m: i for i, m in enumerate(merges)}
    while len(parts) > 1:
        pairs = [(rank.get(pair, len(rank)), i) for i, pair in enumerate(zip(parts, parts[1:], strict=False))]
        best, i = min(pairs)
        if best == len(rank):
            break
        pair = merges[best]
        out, k = [], 0
        while k < len(parts):
            if k + 1 < len(parts) and (parts[k], parts[k + 1]) == pair:
                out.append(parts[k] + parts[k + 1])
                k += 2
            else:
                out.append(parts[k])
                k += 1
        parts = out
    return parts


def byte_text_encoder(
    hidden: int,
    intermediate: int,
    layers: int,
    heads: int,
    vocab: int = 514,
    projection: int | None = None,
    pooled: bool = False,
) -> CLIPTextModel | CLIPTextModelWithProjection:
    """A random-weight CLIP text encoder that reads ``tiny_tokenizer``'s ids (77 positions, start 512, end 513; with
    words, ``vocab`` = ``len(tokenizer)``); ``pooled``: a ``CLIPTextModelWithProjection`` (SDXL's second encoder,
    whose projected end-token state is the pooled embedding)."""
    extra = {} if projection is None else {"projection_dim": projection}
    config = CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=77,
        bos_token_id=512,
        eos_token_id=513,
        pad_token_id=513,
        **extra,
    )
    return CLIPTextModelWithProjection(config) if pooled else CLIPTextModel(config)


def tiny_components(seed: int = 0, guidance_embedding: bool = True) -> dict:
    """Random-weight UNet, VAE, text encoder, tokenizer and LCM scheduler; the same weights for the same seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            block_out_channels=(32, 64),
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=8,
            norm_num_groups=8,
            time_cond_proj_dim=32 if guidance_embedding else None,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            block_out_channels=(8, 16, 16, 16),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            latent_channels=4,
            layers_per_block=1,
            norm_num_groups=8,
            sample_size=64,
        )
        text_encoder = byte_text_encoder(32, 64, layers=2, heads=4, projection=32)
    for m in (unet, vae, text_encoder):
        m.eval()
    return {
        "unet": unet,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tiny_tokenizer(),
        "scheduler": LCMScheduler(steps_offset=1),  # 1 is what SD pipelines expect; LCM timesteps ignore it
    }


def tiny_sdxl_components(seed: int = 0, aesthetics: bool = False, guidance_embedding: bool = False) -> dict:
    """Random weights shaped like SDXL's parts, as diffusers' SDXL tests build them: a UNet with ``text_time`` added
    conditioning (pooled text + 6 size/crop ids, or 5 with ``aesthetics``: the refiner's score variant), two text
    encoders (the second with a projection: the pooled embedding) whose states are concatenated (32 + 32 = the
    UNet's 64-wide cross attention), two tokenizers, the VAE and an LCM scheduler with SDXL's betas. Without
    ``guidance_embedding`` (LCM-SDXL's w-embedding) guidance > 1 runs classifier-free guidance, as LCM-LoRA-SDXL
    does."""
    ids = 5 if aesthetics else 6
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            block_out_channels=(32, 64),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            transformer_layers_per_block=(1, 2),
            projection_class_embeddings_input_dim=ids * 8 + 32,
            cross_attention_dim=64,
            norm_num_groups=8,
            time_cond_proj_dim=32 if guidance_embedding else None,
        )
        vae = tiny_components(seed)["vae"]
        text_encoder = byte_text_encoder(32, 37, layers=2, heads=4, projection=32)
        text_encoder_2 = byte_text_encoder(32, 37, layers=2, heads=4, projection=32, pooled=True)
    for m in (unet, vae, text_encoder, text_encoder_2):
        m.eval()
    scheduler = LCMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="leading", steps_offset=1
    )
    return {
        "unet": unet,
        "vae": vae,
        "text_encoder": text_encoder,
        "text_encoder_2": text_encoder_2,
        "tokenizer": tiny_tokenizer(),
        "tokenizer_2": tiny_tokenizer(),
        "scheduler": scheduler,
    }


def tiny_taesd(seed: int = 0) -> AutoencoderTiny:
    """A random-weight ``AutoencoderTiny`` with TAESD's 8x layout and tiny widths."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = AutoencoderTiny(
            encoder_block_out_channels=(8, 8, 8, 8),
            decoder_block_out_channels=(8, 8, 8, 8),
            num_encoder_blocks=(1, 1, 1, 1),
            num_decoder_blocks=(1, 1, 1, 1),
            latent_channels=4,
        )
    return vae.eval()


def tiny_motion_adapter(
    seed: int = 0, block_out_channels: tuple[int, ...] = (32, 64), zero_out: bool = True
) -> MotionAdapter:
    """A ``MotionAdapter`` for a UNet of ``block_out_channels`` with 1 layer per block: by default
    ``tiny_components``' UNet (32/64 channels), or any small one, such as the toy models'. Its weights are drawn from
    ``seed``; with ``zero_out`` (the ``tiny`` preset) each motion transformer's output projection is zero, AnimateDiff's
    initialisation, so the module leaves every frame as the image model draws it (a random one paints noise over a
    trained model's frames). The tests that check the motion path itself (parity with diffusers' AnimateDiff
    pipelines, cross-frame attention in a motion UNet) take ``zero_out=False``: an identity module would hide it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        adapter = MotionAdapter(
            block_out_channels=tuple(block_out_channels),
            motion_layers_per_block=1,
            motion_num_attention_heads=2,
            motion_norm_num_groups=8,
            motion_max_seq_length=32,
            use_motion_mid_block=False,
        )
    if zero_out:
        for name, sub in adapter.named_modules():
            if name.endswith("proj_out") and isinstance(sub, torch.nn.Linear):
                torch.nn.init.zeros_(sub.weight)
                torch.nn.init.zeros_(sub.bias)
    return adapter.eval()


SD15_UNET = (320, 640, 1280, 1280)
SD15_VAE = (128, 256, 512, 512)


def sd15_components(seed: int = 0, unet_channels: tuple[int, ...] = SD15_UNET, vae_channels=SD15_VAE) -> dict:
    """Random weights with SD1.5's shapes: the 860M-parameter UNet with an LCM w-embedding, the SD VAE, a CLIP-L-sized
    text encoder (on the tiny tokenizer), plus ``taesd`` (TAESD's shapes) and ``adapter`` (AnimateDiff's). For speed
    and memory benchmarks; about 1.3 GB in float32. ``unet_channels`` / ``vae_channels`` narrow the UNet or VAE
    (other model shapes, same layout)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=64, cross_attention_dim=768, time_cond_proj_dim=256, block_out_channels=tuple(unet_channels)
        )
        vae = AutoencoderKL(
            block_out_channels=tuple(vae_channels),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=2,
            latent_channels=4,
            sample_size=512,
        )
        text = byte_text_encoder(768, 3072, layers=12, heads=12, vocab=49408)  # CLIP-L's size
        taesd, adapter = AutoencoderTiny(), MotionAdapter(block_out_channels=tuple(unet_channels))
    return {
        "unet": unet.eval(),
        "vae": vae.eval(),
        "text_encoder": text.eval(),
        "tokenizer": tiny_tokenizer(),
        "scheduler": LCMScheduler(steps_offset=1),
        "taesd": taesd.eval(),
        "adapter": adapter.eval(),
    }


SDXL_UNET = (320, 640, 1280)


def sdxl_components(seed: int = 0, unet_channels: tuple[int, ...] = SDXL_UNET) -> dict:
    """Random weights with SDXL base's shapes: the 2.6B-parameter UNet (transformer depths 0/2/10, 2048-d cross
    attention, ``text_time`` added conditioning), the SDXL VAE, CLIP-L- and OpenCLIP-bigG-sized text encoders (on the
    tiny tokenizer), an LCM scheduler with SDXL's betas, and ``taesd`` (TAESDXL's shapes, which are TAESD's). No
    w-embedding (LCM-LoRA-SDXL's case). For speed benchmarks; about 14 GB in float32. ``unet_channels`` narrows the
    UNet (same layout)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=128,
            block_out_channels=tuple(unet_channels),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 2, 10),
            attention_head_dim=(5, 10, 20),
            use_linear_projection=True,
            cross_attention_dim=2048,
            addition_embed_type="text_time",
            addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816,
        )
        vae = AutoencoderKL(
            block_out_channels=SD15_VAE,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=2,
            latent_channels=4,
            sample_size=1024,
            scaling_factor=0.13025,
        )
        text = byte_text_encoder(768, 3072, layers=12, heads=12, vocab=49408)  # CLIP-L's size
        text_2 = byte_text_encoder(1280, 5120, layers=32, heads=20, vocab=49408, projection=1280, pooled=True)
        taesd = AutoencoderTiny()
    scheduler = LCMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="leading", steps_offset=1
    )
    return {
        "unet": unet.eval(),
        "vae": vae.eval(),
        "text_encoder": text.eval(),
        "text_encoder_2": text_2.eval(),
        "tokenizer": tiny_tokenizer(),
        "tokenizer_2": tiny_tokenizer(),
        "scheduler": scheduler,
        "taesd": taesd.eval(),
    }


def tiny_controlnet(unet, vae_factor: int = 8, seed: int = 0):
    """A random-weight ``ControlNetModel`` made from ``unet`` (``from_unet``, as real ones start), its conditioning
    embedding downsampling by ``vae_factor`` (the VAE's, so a map at the frame's size meets the latent's). Its zero
    convolutions are drawn, not zero: a test of the plumbing needs residuals that change the output."""
    from diffusers import ControlNetModel

    levels = max(1, vae_factor.bit_length() - 1)  # 8 → 3 stride-2 convolutions
    # A UNetMotionModel, or a UNet carrying an IP-Adapter (``from_unet`` would copy its image projection settings):
    # the spatial shapes are the tiny UNet's.
    if type(unet).__name__ != "UNet2DConditionModel" or getattr(unet.config, "encoder_hid_dim_type", None):
        unet = tiny_components(seed)["unet"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # Not copied from the UNet: a w-embedding UNet's time embedding has a ``cond_proj`` a ControlNet lacks (SD1.5
        # ControlNets run beside LCM checkpoints without the w-embedding, as diffusers' pipelines call them).
        net = ControlNetModel.from_unet(
            unet, conditioning_embedding_out_channels=(8,) * levels + (16,), load_weights_from_unet=False
        )
        for name, p in net.named_parameters():
            if name.startswith(
                ("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding.conv_out")
            ):
                torch.nn.init.normal_(p, std=0.05)
    return net.eval()


def tiny_image_encoder(seed: int = 0, hidden: int = 32, projection: int = 32):
    """A random-weight ``CLIPVisionModelWithProjection`` (32 px, 8 px patches, width ``hidden``, projection
    ``projection``): the shape of IP-Adapter's CLIP image encoder, tiny. Its ``image_embeds`` are (b, projection), its
    patch features (b, 17, hidden)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        projection_dim=projection,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = CLIPVisionModelWithProjection(config)
    return encoder.eval()


TINY_ENCODERS = {"models/image_encoder": (32, 32), "sdxl_models/image_encoder": (48, 40)}
"""(hidden, projection) of the tiny stand-in for each image encoder folder of ``h94/IP-Adapter``: ViT-H's (1280,
1024 in the real one: SD1.5's adapters and SDXL's ``vit-h`` ones) and ViT-bigG's (1664, 1280: ``ip-adapter_sdxl``),
different here too, so an adapter paired with the other folder's encoder fails as a real one would."""


def _ip_attention_layers(unet) -> list[int]:
    """The inner width of each cross-attention of ``unet`` that an IP-Adapter extends, in the order diffusers numbers
    them (``ip_adapter`` keys 1, 3, 5, ...: ``UNet2DConditionLoadersMixin._convert_ip_adapter_attn_to_diffusers``)."""
    widths, channels = [], list(unet.config.block_out_channels)
    for name in unet.attn_processors:
        if name.endswith("attn1.processor") or "motion_modules" in name:
            continue
        if name.startswith("mid_block"):
            widths.append(channels[-1])
        elif name.startswith("up_blocks"):
            widths.append(channels[::-1][int(name.split(".")[1])])
        else:
            widths.append(channels[int(name.split(".")[1])])
    return widths


def tiny_ip_adapter(unet, encoder, plus: bool = False, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """A random IP-Adapter for ``unet`` and the image ``encoder``, as the released files hold it: ``{"image_proj":
    {...}, "ip_adapter": {"1.to_k_ip.weight", "1.to_v_ip.weight", "3.…"}}`` with the original (not diffusers') key
    names, so it goes through diffusers' own conversion in ``load_ip_adapter``. ``plus``: IP-Adapter Plus's
    resampler over the encoder's patch features (4 queries, width 64, 1 head) instead of a projection of the pooled
    embedding to 4 tokens."""
    from diffusers.models.embeddings import IPAdapterPlusImageProjection

    cross = int(unet.config.cross_attention_dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if plus:
            resampler = IPAdapterPlusImageProjection(
                embed_dims=encoder.config.hidden_size, output_dims=cross, hidden_dims=64, heads=1, num_queries=4
            )
            image_proj = _plus_original_keys(resampler.state_dict())
        else:
            dim = encoder.config.projection_dim
            image_proj = {
                "proj.weight": torch.randn(4 * cross, dim) / dim**0.5,
                "proj.bias": torch.zeros(4 * cross),
                "norm.weight": torch.ones(cross),
                "norm.bias": torch.zeros(cross),
            }
        layers = {}
        for i, width in enumerate(_ip_attention_layers(unet)):
            for kind in ("to_k_ip", "to_v_ip"):
                layers[f"{2 * i + 1}.{kind}.weight"] = torch.randn(width, cross) / cross**0.5
    return {"image_proj": image_proj, "ip_adapter": layers}


def _plus_original_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An ``IPAdapterPlusImageProjection``'s state dict under the released files' names (the inverse of diffusers'
    ``_convert_ip_adapter_image_proj_to_diffusers`` for IP-Adapter Plus): ``layers.N.ln0`` → ``layers.N.0.norm1``,
    ``attn.to_k`` + ``attn.to_v`` → ``0.to_kv``, ``ff.1.net.0.proj`` → ``1.1``, ..."""
    out: dict[str, torch.Tensor] = {}
    renames = {
        "ln0": "0.norm1",
        "ln1": "0.norm2",
        "attn.to_q": "0.to_q",
        "attn.to_out.0": "0.to_out",
        "ff.0": "1.0",
        "ff.1.net.0.proj": "1.1",
        "ff.1.net.2": "1.3",
    }
    for key, value in state.items():
        if not key.startswith("layers."):
            out[key] = value
            continue
        _, n, rest = key.split(".", 2)
        if rest.startswith("attn.to_v"):
            continue
        if rest.startswith("attn.to_k"):
            tail = rest.removeprefix("attn.to_k")
            out[f"layers.{n}.0.to_kv{tail}"] = torch.cat([value, state[f"layers.{n}.attn.to_v{tail}"]])
            continue
        for new, old in ((v, k) for k, v in renames.items()):
            if rest.startswith(old + "."):
                out[f"layers.{n}.{new}{rest[len(old) :]}"] = value
                break
        else:
            raise KeyError(key)
    return out


def save_tiny_ip_adapter(repo, unet, name: str = "sd15", seed: int = 0) -> str:
    """Write a random IP-Adapter for ``unet`` and its tiny image encoder into the folder ``repo`` where
    ``h94/IP-Adapter`` holds the adapter ``name`` of ``ip_presets.IP_ADAPTERS`` (``models/ip-adapter_sd15
    .safetensors``, ``sdxl_models/ip-adapter_sdxl.safetensors``, ...: keys ``image_proj.*`` and ``ip_adapter.*``; an
    ``ip-adapter-plus`` file IP-Adapter Plus's), its encoder a ``CLIPVisionModelWithProjection`` in the adapter's
    encoder folder (``models/image_encoder`` or ``sdxl_models/image_encoder``, ``TINY_ENCODERS``' shapes), so the real
    loading path reads it as it would a download. Returns the weights file's path."""
    from pathlib import Path

    from safetensors.torch import save_file

    from .ip_presets import IP_ADAPTERS

    spec = IP_ADAPTERS[name]
    encoder = tiny_image_encoder(seed, *TINY_ENCODERS[spec.image_encoder])
    encoder.save_pretrained(Path(repo) / spec.image_encoder)
    state = tiny_ip_adapter(unet, encoder, spec.weight_name.startswith("ip-adapter-plus"), seed)
    flat = {f"{part}.{k}": v.contiguous() for part, d in state.items() for k, v in d.items()}
    path = Path(repo) / spec.subfolder / spec.weight_name
    save_file(flat, str(path))
    return str(path)
