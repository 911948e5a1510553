"""The OpenVINO backend (``--backend openvino``): the UNet (2D or motion) and the VAE's two halves (or TAESD's)
converted with ``openvino.convert_model`` at the render's fixed shapes, after LoRAs are fused, and run by OpenVINO's
CPU plugin in float32 or bfloat16. (The text encoder stays torch's: see ``Models.use_openvino``.)

Every render calls each module with one fixed shape (the 2D batch is padded, VAE chunks are balanced; see
``UNetDenoiser``), so a module converts once per shape. The converted model is saved on disk under a key of its
weights' digest, the input shapes, the precision and the OpenVINO version (``cache_dir()``), and OpenVINO's own
compiled-blob cache sits beside it, so only a first run converts. Once compiled, the torch weights leave memory
(``_Weights``). The wrappers take and return torch tensors, with the call signatures the denoiser and the codec use,
so nothing above this module knows which backend runs.

``--quantize int8``: ``OVUNet.recording()`` records the float UNet's calls during a calibration pass (the caller's:
``pipelines/quantize.py``), ``OVUNet.quantize(calls)`` swaps in the int8 UNet NNCF makes from the float IR on them
(:func:`quantize_ir`), cached beside the float models under the calls' digest.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from contextlib import contextmanager
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
        self.recording: list[dict[str, torch.Tensor]] | None = None  # the calls, while a calibration pass records

    def _key(self, inputs: dict[str, torch.Tensor]) -> tuple:
        return tuple((k, tuple(v.shape), str(v.dtype)) for k, v in inputs.items())

    def _ir(self, inputs: dict[str, torch.Tensor]) -> Path:
        """The converted model at these inputs' shapes: its ``model.xml`` in the cache, converted now if missing."""
        import openvino as ov

        shapes = _shapes(inputs)
        tag = hashlib.blake2b(f"{shapes}|static|{ov.__version__}".encode(), digest_size=8).hexdigest()
        folder = cache_dir() / f"{self.what}-{self._digest()}-{tag}"
        xml = folder / "model.xml"
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
            _save(model, folder)
        return xml

    def _compile(self, inputs: dict[str, torch.Tensor]):
        return _compile(self._ir(inputs), self.precision)

    def __call__(self, **inputs: torch.Tensor) -> torch.Tensor:
        if self.recording is not None:  # a calibration pass: the inputs as they come, copied
            self.recording.append({k: v.detach().clone() for k, v in inputs.items()})
        key = self._key(inputs)
        with self._lock:  # one request per shape, reused: a new one per call grew memory by 20% over 300 frames
            request = self._compiled.get(key)
            if request is None:
                request = self._compiled[key] = self._compile(inputs).create_infer_request()
                self._weights.release(id(self))
            request.infer([v.numpy() for v in inputs.values()], share_inputs=True)
            return torch.from_numpy(request.get_output_tensor(0).data.copy())


def _shapes(inputs: dict[str, torch.Tensor]) -> str:
    return "_".join(f"{k}{'x'.join(map(str, v.shape))}" for k, v in inputs.items())


def _save(model, folder: Path) -> None:
    """``model`` saved as ``folder/model.xml``, atomically: written beside it, then renamed into place."""
    import openvino as ov

    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, tmp / "model.xml", compress_to_fp16=False)
    try:
        tmp.rename(folder)
    except OSError:  # another process saved it first: theirs is the same model
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def _compile(xml: Path, precision: str):
    """``xml`` compiled for the CPU at a precision hint (``f32``/``bf16``: what the layers not in int8 compute in)."""
    import openvino as ov

    core = ov.Core()
    # One blob folder per precision: OpenVINO 2026.4's key for a model compiled from its path leaves the precision
    # hint out, so a bfloat16 compile found the float32 blob of the same IR and ran it as NaN (black frames).
    core.set_property({"CACHE_DIR": str(cache_dir() / "blobs" / precision)})
    config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
    # From the path, not a read model: on a blob-cache hit OpenVINO then never reads the IR's weights (the whole
    # process's peak is later, while rendering, and did not move: BENCHMARKS.md).
    return core.compile_model(str(xml), "CPU", config)


def require_nncf() -> None:
    try:
        import nncf  # noqa: F401
    except ImportError:
        raise UserError('--quantize int8 needs NNCF: pip install "lcm-video[int8]"') from None


INT8_SCHEMES = ("hybrid", "full")
INT8_SCHEME = "hybrid"  # what --quantize int8 runs: the two measured against each other in BENCHMARKS.md


def calibration_digest(calls: list[dict[str, torch.Tensor]]) -> str:
    """BLAKE2b of recorded calls (names, dtypes, shapes, bytes): the calibration's identity in the int8 cache key."""
    h = hashlib.blake2b(digest_size=16)
    for call in calls:
        for name, t in call.items():
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _weighted_matmuls(model) -> list[str]:
    """The MatMuls with a constant operand (a Linear's weight, perhaps behind a Convert or Reshape): hybrid mode
    compresses their weights and leaves their activations in float."""

    def constant(node, port: int) -> bool:
        node = node.input_value(port).get_node()
        while node.get_type_name() in ("Convert", "Reshape", "FakeQuantize", "Transpose") and node.inputs():
            node = node.input_value(0).get_node()
        return node.get_type_name() == "Constant"

    return [op.get_friendly_name() for op in model.get_ops() if op.get_type_name() == "MatMul" and (
        constant(op, 0) or constant(op, 1))]  # fmt: skip


def quantize_ir(xml: Path, calls: list[dict[str, torch.Tensor]], scheme: str = INT8_SCHEME):
    """The float IR at ``xml`` quantised to int8 by NNCF's post-training quantisation, its activation ranges
    measured on ``calls`` (the UNet's recorded inputs, one dataset item each; all of them used).

    ``hybrid`` (optimum-intel's and OpenVINO's notebooks' mode for diffusion UNets): the Linear layers' weights
    int8 by ``nncf.compress_weights`` (data-free, asymmetric), then ``nncf.quantize`` (transformer model type) on
    everything else: convolutions in int8 weights and activations, the attention's matmuls between activations,
    the Linear layers left out. ``full``: ``nncf.quantize`` over the whole UNet, bias correction off (as OpenVINO's
    LCM notebook quantises its UNet)."""
    import nncf
    import openvino as ov

    if scheme not in INT8_SCHEMES:
        raise ValueError(f"int8 scheme {scheme!r}: one of {INT8_SCHEMES}")
    model = ov.Core().read_model(str(xml))
    data = nncf.Dataset([{name: t.numpy() for name, t in call.items()} for call in calls])
    if scheme == "full":
        advanced = nncf.AdvancedQuantizationParameters(disable_bias_correction=True)
        return nncf.quantize(model, data, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calls),
                             advanced_parameters=advanced)  # fmt: skip
    from nncf.quantization.advanced_parameters import AdvancedSmoothQuantParameters

    linear = _weighted_matmuls(model)
    model = nncf.compress_weights(
        model, mode=nncf.CompressWeightsMode.INT8_ASYM, ignored_scope=nncf.IgnoredScope(types=["Convolution"])
    )
    # Smooth quant off for the matmuls: their weights are already compressed (optimum-intel's setting)
    advanced = nncf.AdvancedQuantizationParameters(smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=-1))
    return nncf.quantize(
        model, data, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calls),
        ignored_scope=nncf.IgnoredScope(names=linear, validate=False), advanced_parameters=advanced,
    )  # fmt: skip


class _Quantized(_Converted):
    """A converted module in int8: the float IR at the calibration calls' shapes quantised by :func:`quantize_ir`
    on those calls, cached on disk under the float weights' digest, the calls' digest (the calibration's identity:
    another source or prompt calibrates anew), the scheme and the OpenVINO and NNCF versions. A call with other
    shapes reshapes the int8 IR (its quantisation ranges hold per channel or per tensor, not per batch row)."""

    def __init__(self, source: _Converted, calls: list[dict[str, torch.Tensor]], scheme: str = INT8_SCHEME):
        super().__init__(source.module, source.what, source.precision, source.notify, source._digest, source._weights)
        self.source, self.calls, self.scheme = source, calls, scheme
        self.digest = calibration_digest(calls)

    def _base(self) -> Path:
        import nncf
        import openvino as ov

        ident = f"{self.scheme}|{len(self.calls)}|{self.digest}|{ov.__version__}|{nncf.__version__}"
        tag = hashlib.blake2b(ident.encode(), digest_size=8).hexdigest()
        folder = cache_dir() / f"{self.what}-int8-{self._digest()}-{tag}"
        if not (folder / "model.xml").is_file():
            float_xml = self.source._ir(self.calls[0])
            if self.notify is not None:
                self.notify(f"quantising the {self.what} to int8 with NNCF on {len(self.calls)} calibration calls "
                            f"(first run with this calibration; cached in {folder})")  # fmt: skip
            import contextlib
            import logging

            log, level = logging.getLogger("nncf"), logging.getLogger("nncf").level
            log.setLevel(logging.WARNING)  # its INFO lines: one per operation the ignored scope names
            try:
                with contextlib.redirect_stdout(sys.stderr):  # its progress bars: stdout may be the output
                    model = quantize_ir(float_xml, self.calls, self.scheme)
            finally:
                log.setLevel(level)
            _save(model, folder)
        return folder / "model.xml"

    def _ir(self, inputs: dict[str, torch.Tensor]) -> Path:
        base = self._base()
        if self._key(inputs) == self._key(self.calls[0]):
            return base
        import openvino as ov

        tag = hashlib.blake2b(_shapes(inputs).encode(), digest_size=8).hexdigest()
        folder = base.parent.with_name(f"{base.parent.name}-{tag}")
        if not (folder / "model.xml").is_file():
            model = ov.Core().read_model(str(base))
            model.reshape({name: list(v.shape) for name, v in inputs.items()})
            _save(model, folder)
        return folder / "model.xml"


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
        self._float = self._run = _Converted(_UNetCall(unet.float()), "unet", precision, notify)

    @contextmanager
    def recording(self):
        """Run the float UNet while the block runs, recording its calls' inputs (a calibration pass); yields the
        list they are appended to."""
        self._run, self._float.recording = self._float, []
        try:
            yield self._float.recording
        finally:
            self._float.recording = None

    def quantize(self, calls: list[dict[str, torch.Tensor]], scheme: str = INT8_SCHEME) -> None:
        """Run in int8 from now on, quantised on ``calls`` (from :meth:`recording`); the same calibration again
        keeps the int8 model already in use."""
        require_nncf()
        if not calls:
            raise ValueError("no calibration calls: record some with OVUNet.recording()")
        if isinstance(self._run, _Quantized) and (self._run.digest, self._run.scheme) == (
            calibration_digest(calls), scheme):  # fmt: skip
            return
        self._run = _Quantized(self._float, calls, scheme)
        self._run._base()  # quantised now (or found in the cache), not inside the render's first call
        self._float._compiled.clear()  # the float model's compiled requests leave memory

    def use_float(self) -> None:
        """Run the float UNet again (``--quantize none`` on models an int8 render used)."""
        self._run = self._float

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
