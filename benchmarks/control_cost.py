"""What ``--control`` costs (issue 28): seconds per stylised frame with no, one and two ControlNets on random weights
of SD1.5's shapes (UNet with an LCM w-embedding, SD VAE; each ControlNet ``ControlNetModel.from_unet``-shaped, 361 M
parameters), 4 steps at strength 1 (every step runs the nets), and each annotator's seconds per frame.

    OMP_NUM_THREADS=2 python -m benchmarks.control_cost [--sizes 256,512] [--frames 2] [--out FILE.json]

The frames go through ``Stylizer.window`` (encode, sample, decode; no file I/O), after one untimed warm-up window at
each size. Annotators at 512² on a frame of the sample clip: ``canny`` (OpenCV), ``tile`` (none), ``depth`` through
transformers' depth-estimation pipeline on a random-weight model of Depth-Anything-V2-Small's shapes (24.8 M
parameters: the real weights cannot be downloaded here, and the cost is the shapes'). controlnet_aux's detectors
(softedge, lineart, openpose) are not measured: their weights cannot be downloaded here.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT, Rows


def depth_small(folder: Path) -> Path:
    """A random-weight Depth-Anything-V2-Small (its config's shapes) saved with its image processor to ``folder``."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    stages = ["stage3", "stage6", "stage9", "stage12"]
    backbone = Dinov2Config(
        hidden_size=384, num_attention_heads=6, num_hidden_layers=12, out_features=stages, patch_size=14,
        image_size=518, reshape_hidden_states=False,
    )  # fmt: skip
    cfg = DepthAnythingConfig(
        backbone_config=backbone, neck_hidden_sizes=[48, 96, 192, 384], fusion_hidden_size=64, head_hidden_size=32,
        reassemble_hidden_size=384, reassemble_factors=[4, 2, 1, 0.5],
    )  # fmt: skip
    DepthAnythingForDepthEstimation(cfg).save_pretrained(folder)
    DPTImageProcessor(
        size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14, do_pad=False,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225], resample=3,
    ).save_pretrained(folder)  # fmt: skip
    return folder


def annotators_repo(hf_home: Path) -> Path:
    """A Hugging Face cache under ``hf_home`` holding ``lllyasviel/Annotators`` as controlnet_aux reads it (PiDiNet,
    the two line-art generators, OpenPose's body, hand and face nets), with random weights of the real shapes: set
    ``HF_HOME`` to it (offline) and ``--control softedge|lineart|openpose`` load through their real path."""
    import torch
    from controlnet_aux.lineart import Generator
    from controlnet_aux.open_pose.face import FaceNet
    from controlnet_aux.open_pose.model import bodypose_model, handpose_model
    from controlnet_aux.pidi.model import pidinet

    def strip_first(net):  # OpenPose's files name weights without the first component (``util.transfer``)
        return {".".join(k.split(".")[1:]): v for k, v in net.state_dict().items()}

    sha = "0" * 40
    repo = hf_home / "hub" / "models--lllyasviel--Annotators"
    snap = repo / "snapshots" / sha
    snap.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(sha)
    torch.manual_seed(0)
    torch.save({"state_dict": pidinet().state_dict()}, snap / "table5_pidinet.pth")
    torch.save(Generator(3, 1, 3).state_dict(), snap / "sk_model.pth")
    torch.save(Generator(3, 1, 3).state_dict(), snap / "sk_model2.pth")
    torch.save(strip_first(bodypose_model()), snap / "body_pose_model.pth")
    torch.save(strip_first(handpose_model()), snap / "hand_pose_model.pth")
    torch.save(FaceNet().state_dict(), snap / "facenet.pth")
    return hf_home


def main(argv: list[str] | None = None) -> Rows:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.control_cost", description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--frames", type=int, default=2)
    ap.add_argument("--skip-nets", action="store_true", help="only the annotators")
    ap.add_argument(
        "--aux", action="store_true", help="also controlnet_aux's annotators (softedge, lineart, openpose; random nets)"
    )
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if args.aux:  # huggingface_hub reads its cache folder once, at import
        import os

        hf_home = Path(tempfile.mkdtemp(prefix="annotators-"))
        os.environ.update(HF_HOME=str(hf_home), HF_HUB_CACHE=str(hf_home / "hub"), HF_HUB_OFFLINE="1")
    import torch
    from diffusers import ControlNetModel

    from lcm_video.control.annotators import Depth, canny, tile
    from lcm_video.models.container import models_from_components
    from lcm_video.models.tiny import sd15_components
    from lcm_video.pipelines.video_to_video import Stylizer
    from lcm_video.settings.configs import StylizeConfig
    from lcm_video.video.reader import FrameReader, probe

    rows = Rows(args.out, "control_cost")
    threads = torch.get_num_threads()
    info = probe(ROOT / "samples" / "clip.mp4")
    if not args.skip_nets:
        comps = sd15_components()
        models = models_from_components(comps, "cpu", torch.float32, 8.0, "sd15-shapes")
        for seed in (0, 1):  # two random ControlNets of SD1.5's shape, by source name as --control-model loads them
            torch.manual_seed(seed)
            models.controlnets[f"net{seed}"] = ControlNetModel.from_unet(comps["unet"], load_weights_from_unet=False)
        for size in (int(s) for s in args.sizes.split(",")):
            frames = FrameReader(info, (size, size)).read(range(args.frames))
            for nets in (0, 1, 2, 0):  # the first is the warm-up
                kinds = ("canny", "tile")[:nets]
                cfg = StylizeConfig.make(
                    prompt="a watercolor", strength=1.0, blend=0.0, control=kinds,
                    control_model=tuple(f"{k}=net{i}" for i, k in enumerate(kinds)),
                )  # fmt: skip
                st = Stylizer(models, cfg, size=(size, size))
                t0 = time.perf_counter()
                st.window(frames, range(args.frames))
                seconds = time.perf_counter() - t0
                if (nets, size) == (0, size) and not any(r.get("size") == size for r in rows):
                    continue  # the warm-up
                rows.add(
                    {"case": "stylize", "size": size, "controlnets": nets, "threads": threads,
                     "s_per_frame": round(seconds / args.frames, 2)}
                )  # fmt: skip
    frame = FrameReader(info, (512, 512)).read([10])[0]
    with tempfile.TemporaryDirectory() as tmp:
        depth = Depth(str(depth_small(Path(tmp) / "depth")))
        kinds = [("canny", canny), ("tile", tile), ("depth", depth)]
        if args.aux:
            from lcm_video.control.annotators import annotator

            annotators_repo(hf_home)
            kinds += [(k, annotator(k)) for k in ("softedge", "lineart", "openpose")]
        for name, fn in kinds:
            fn(frame)  # warm-up
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                out = fn(frame)
                times.append(time.perf_counter() - t0)
            assert out.shape == frame.shape and out.dtype == np.uint8
            rows.add({"case": "annotator", "annotator": name, "size": 512, "threads": threads,
                      "ms_per_frame": round(min(times) * 1e3, 1)})  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
