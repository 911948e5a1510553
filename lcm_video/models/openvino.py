"""The OpenVINO backend (``--backend openvino``): the UNet (2D or motion) and the VAE's two halves (or TAESD's)
converted with ``openvino.convert_model`` at the render's fixed shapes, after LoRAs are fused, and run by OpenVINO's
CPU plugin in float32 or bfloat16. (The text encoder stays torch's: see ``Models.use_openvino``.)

Every render calls each module with one fixed shape (the 2D batch is padded, VAE chunks are balanced; see
``UNetDenoiser``), so a module converts once per shape. The converted model is saved on disk under a key of its
weights' digest, the input shapes, the precision and the OpenVINO version (``cache_dir()``), and OpenVINO's own
compiled-blob cache sits beside it, so only a first run converts. Once compiled, the torch weights leave memory
(``_Weights``). The wrappers take and return torch tensors, with the call signatures the denoiser and the codec use,
so nothing above this module knows which backend runs.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import torch

from .. import files
from ..errors import UserError

PRECISIONS = {torch.float32: "f32", torch.bfloat16: "bf16"}


def available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def require() -> None:
    if not available():
        raise UserError('--backend openvino needs OpenVINO: pip install "lcm-video[openvino]"')


def cache_dir() -> Path:
    """Where converted models live: ``$LCM_VIDEO_CACHE/openvino`` (default ``~/.cache/lcm_video/openvino``)."""
    return files.cache_dir() / "openvino"


def weights_digest(module: torch.nn.Module) -> str:
    """BLAKE2b of every parameter and buffer (names, dtypes, shapes, bytes): fused LoRAs change it, a reload of the
    same weights does not. About 1 GB/s."""
    h = hashlib.blake2b(digest_size=16)
    for name, t in sorted({**dict(module.named_parameters()), **dict(module.named_buffers())}.items()):
        t = t.detach().contiguous().cpu()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class _Digest:
    """A module's :func:`weights_digest`, computed on first use and kept (the VAE's two halves share one)."""

    def __init__(self, module: torch.nn.Module):
        self.module, self.value = module, None

    def __call__(self) -> str:
        if self.value is None:
            self.value = weights_digest(self.module)
        return self.value


class _Weights:
    """The torch weights behind one or more converted runners (the VAE's encoder and decoder share them), held in
    memory only while a conversion needs them.

    Once every runner has compiled a shape, the weights are written to the cache (``torch/<digest>.safetensors``,
    once per digest) and the module moves to the ``meta`` device: a render then holds the compiled models alone (at
    SD1.5's size the float32 UNet and VAE are 3.7 GB). A later call at a new shape converts again and reads them back
    first. Any failure to write them leaves them in memory."""

    def __init__(self, module: torch.nn.Module, digest: _Digest, users: int):
        self.module, self.digest, self.users = module, digest, users
        self.ready: set[int] = set()
        self.offloaded = False
        self._lock = threading.Lock()

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {**dict(self.module.named_parameters()), **dict(self.module.named_buffers())}

    def _path(self) -> Path:
        return cache_dir() / "torch" / f"{self.digest()}.safetensors"

    def restore(self) -> None:
        """The weights back in memory (before a conversion)."""
        with self._lock:
            if not self.offloaded:
                return
            from safetensors import safe_open

            self.module.to_empty(device="cpu")
            with torch.no_grad(), safe_open(str(self._path()), framework="pt") as f:
                for name, t in self._tensors().items():
                    t.copy_(f.get_tensor(name))  # one tensor at a time: never two copies of the whole model
            self.offloaded = False

    def release(self, user: int) -> None:
        """``user`` has compiled a shape; once all have, write the weights to disk (once) and drop them."""
        with self._lock:
            self.ready.add(user)
            if self.offloaded or len(self.ready) < self.users:
                return
            path = self._path()
            try:
                if not path.is_file():
                    from safetensors.torch import save_file

                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
                    save_file({k: v.detach().contiguous() for k, v in self._tensors().items()}, str(tmp))
                    tmp.replace(path)
            except (OSError, RuntimeError, ValueError):  # a full disk, shared tensors: keep them in memory
                return
            self.module.to("meta")
            self.offloaded = True


class _Converted:
    """One torch module run through OpenVINO: converted (or read from the cache) on the first call with each shape
    signature, compiled for the CPU at ``precision``. ``weights``: the module's :class:`_Weights` (shared with the
    other runners of the same module), dropped from memory once all of them have compiled."""

    def __init__(self, module: torch.nn.Module, what: str, precision: str, notify=None, digest=None, weights=None):
        self.module, self.what, self.precision, self.notify = module.eval(), what, precision, notify
        self._digest = digest or _Digest(module)
        self._weights = weights or _Weights(module, self._digest, 1)
        self._compiled: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def _key(self, inputs: dict[str, torch.Tensor]) -> tuple:
        return tuple((k, tuple(v.shape), str(v.dtype)) for k, v in inputs.items())

    def _compile(self, inputs: dict[str, torch.Tensor]):
        import openvino as ov

        shapes = "_".join(f"{k}{'x'.join(map(str, v.shape))}" for k, v in inputs.items())
        tag = hashlib.blake2b(f"{shapes}|static|{ov.__version__}".encode(), digest_size=8).hexdigest()
        folder = cache_dir() / f"{self.what}-{self._digest()}-{tag}"
        xml = folder / "model.xml"
        core = ov.Core()
        # One blob folder per precision: OpenVINO 2026.4's key for a model compiled from its path leaves the precision
        # hint out, so a bfloat16 compile found the float32 blob of the same IR and ran it as NaN (black frames).
        core.set_property({"CACHE_DIR": str(cache_dir() / "blobs" / self.precision)})
        if not xml.is_file():
            self._weights.restore()
            if self.notify is not None:
                self.notify(f"converting the {self.what} for OpenVINO at {shapes} (first run only; cached in {folder})")
            import warnings

            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the tracer's notes on Python branches over shapes: fixed here
                model = ov.convert_model(self.module, example_input=inputs)
            # The traced inputs come out dynamic ([?,4,?,?]); fixed, OpenVINO plans its buffers once: a whole sd15
            # render at 512² peaked at 15.4 GiB instead of 18.6, 4-9% faster (BENCHMARKS.md).
            model.reshape({name: list(v.shape) for name, v in inputs.items()})
            tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
            tmp.mkdir(parents=True, exist_ok=True)
            ov.save_model(model, tmp / "model.xml", compress_to_fp16=False)
            try:
                tmp.rename(folder)
            except OSError:  # another process converted it first: theirs is the same model
                import shutil

                shutil.rmtree(tmp, ignore_errors=True)
        config = {"INFERENCE_PRECISION_HINT": self.precision, "PERFORMANCE_HINT": "LATENCY"}
        # From the path, not a read model: on a blob-cache hit OpenVINO then never reads the IR's weights (the whole
        # process's peak is later, while rendering, and did not move: BENCHMARKS.md).
        return core.compile_model(str(xml), "CPU", config)

    def __call__(self, **inputs: torch.Tensor) -> torch.Tensor:
        key = self._key(inputs)
        with self._lock:  # one request per shape, reused: a new one per call grew memory by 20% over 300 frames
            request = self._compiled.get(key)
            if request is None:
                request = self._compiled[key] = self._compile(inputs).create_infer_request()
                self._weights.release(id(self))
            request.infer([v.numpy() for v in inputs.values()], share_inputs=True)
            return torch.from_numpy(request.get_output_tensor(0).data.copy())


class _UNetCall(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states, timestep_cond=None, text_embeds=None, time_ids=None):
        added = None if text_embeds is None else {"text_embeds": text_embeds, "time_ids": time_ids}  # SDXL's
        return self.unet(
            sample, timestep, encoder_hidden_states, timestep_cond=timestep_cond, added_cond_kwargs=added,
            return_dict=False,
        )[0]  # fmt: skip


class OVUNet:
    """A UNet (``UNet2DConditionModel`` or ``UNetMotionModel``) run by OpenVINO, called as the denoiser calls a
    diffusers UNet: ``(sample, timestep, encoder_hidden_states=, timestep_cond=, return_dict=False)`` → (out,).
    Inputs and outputs are float32 torch tensors on the CPU; the precision hint decides what OpenVINO computes in."""

    device = torch.device("cpu")
    dtype = torch.float32

    def __init__(self, unet, precision: str, notify=None):
        self.config = unet.config
        self.motion = type(unet).__name__ == "UNetMotionModel"
        self._run = _Converted(_UNetCall(unet.float()), "unet", precision, notify)

    def __call__(
        self, sample, timestep, encoder_hidden_states, timestep_cond=None, added_cond_kwargs=None, return_dict=False
    ):
        b = sample.shape[0]
        t = torch.as_tensor(timestep).to(torch.int64).reshape(-1).expand(b).contiguous()  # one signature for both
        inputs = {"sample": sample.float().contiguous(), "timestep": t}
        inputs["encoder_hidden_states"] = encoder_hidden_states.float().contiguous()
        if timestep_cond is not None:
            inputs["timestep_cond"] = timestep_cond.float().contiguous()
        for name, value in (added_cond_kwargs or {}).items():  # SDXL's pooled text and time ids
            if name not in ("text_embeds", "time_ids"):
                raise UserError(f"--backend openvino: the converted UNet takes no {name!r}; use --backend torch")
            inputs[name] = value.float().contiguous()
        return (self._run(**inputs),)


class _Encode(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, x):
        enc = self.vae.encode(x)
        return enc.latent_dist.mode() if hasattr(enc, "latent_dist") else enc.latents


class _Decode(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, z):
        return self.vae.decode(z, return_dict=False)[0]


class OVVae:
    """An ``AutoencoderKL`` or ``AutoencoderTiny`` run by OpenVINO, with the calls the codec makes: ``encode(x)`` →
    an object with ``latents`` (the posterior mean for a KL VAE), ``decode(z, return_dict=False)`` → (images,)."""

    device = torch.device("cpu")
    dtype = torch.float32

    def __init__(self, vae, precision: str, notify=None):
        self.config = vae.config
        name = "taesd" if type(vae).__name__ == "AutoencoderTiny" else "vae"
        vae = vae.float()
        digest = _Digest(vae)
        weights = _Weights(vae, digest, users=2)
        self._encode = _Converted(_Encode(vae), f"{name}-encoder", precision, notify, digest, weights)
        self._decode = _Converted(_Decode(vae), f"{name}-decoder", precision, notify, digest, weights)

    def encode(self, x):
        return SimpleNamespace(latents=self._encode(x=x.float().contiguous()))

    def decode(self, z, return_dict=False):
        return (self._decode(z=z.float().contiguous()),)


def convert(pipe, dtype: torch.dtype) -> tuple[OVUNet, OVVae]:
    """The pipeline's UNet and VAE as OpenVINO modules computing in ``dtype`` (float32 or bfloat16)."""
    require()
    if dtype not in PRECISIONS:
        raise UserError(f"--backend openvino computes in float32 or bfloat16, not {str(dtype).split('.')[-1]}")
    notify = lambda text: print(f"lcm-video: {text}", file=sys.stderr)  # noqa: E731
    precision = PRECISIONS[dtype]
    return OVUNet(pipe.unet, precision, notify), OVVae(pipe.vae, precision, notify)
