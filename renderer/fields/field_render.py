"""`nrender nerf render`: a trained field alone, drawn by the torch marcher that its
training report uses (marching.py; rays through pixel centres, early termination at
transmittance 0.01, as the path tracer marches it).

Views come from a dataset split (the field's own dataset by default) or from the camera of
an nrender scene file, which is put into the field's world through the field's
`scene_from_field` placement. With a dataset split whose images exist, each view's PSNR
and SSIM against them (over the same background) go to `metrics.json`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import NrenderError
from ..image_io import atomic_path, write_ldr
from ..neural.metrics import psnr, ssim
from ..neural.progress import progress_bar
from .dataset import composite
from .marching import render_image
from .nfield import NerfFile

BACKGROUNDS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0), "transparent": None}


@dataclass
class View:
    name: str
    c2w: np.ndarray  # [4, 4] in the field's world
    focal: float
    width: int
    height: int
    truth: np.ndarray | None = None  # [H, W, 4] straight RGBA in [0, 1]


def scene_camera_view(nerf: NerfFile, scene_path: str | os.PathLike[str]) -> View:
    """The camera of a scene file, as a view of the field's world."""
    from ..scene import load_scene

    camera = load_scene(scene_path).camera
    forward, right, up = camera.basis()
    scene_c2w = np.eye(4)
    scene_c2w[:3, 0], scene_c2w[:3, 1], scene_c2w[:3, 2] = right, up, -forward
    scene_c2w[:3, 3] = camera.position
    c2w = np.linalg.inv(nerf.scene_from_field) @ scene_c2w
    width, height = camera.resolution
    focal = 0.5 * height / math.tan(math.radians(camera.fov) * 0.5)  # fov is vertical
    return View("camera", c2w, focal, width, height)


def dataset_views(root: str | os.PathLike[str], split: str) -> list[View]:
    from .dataset import load_dataset

    data = load_dataset(root, split)
    return [
        View(f"{split}_{i:03d}", data.c2w[i], data.focal, data.width, data.height, data.images[i])
        for i in range(len(data.c2w))
    ]


def render_views(
    nerf: NerfFile,
    views: list[View],
    out_dir: str | os.PathLike[str],
    background: str = "white",
    progress: bool = True,
) -> dict:
    """Write `out_dir`/NAME.png per view (RGBA for a transparent background) and, where
    views have ground truth, `metrics.json`; returns the metrics."""

    if background not in BACKGROUNDS:
        raise NrenderError(f"unknown background {background!r} ({', '.join(BACKGROUNDS)})")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NrenderError(f"{out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NrenderError(f"{out}: cannot create ({exc.strerror or exc})") from None
    rgb = BACKGROUNDS[background]
    device = nerf.field.aabb.device
    bg = torch.tensor(rgb if rgb is not None else (0.0, 0.0, 0.0), device=device)
    per_view = []
    bar = progress_bar(progress, len(views), "render", "view")
    for view in views:
        color, alpha = render_image(
            nerf.field,
            nerf.occupancy,
            torch.from_numpy(view.c2w).float(),
            view.focal,
            view.width,
            view.height,
            bg,
        )
        color, alpha = color.clamp(0, 1).cpu().numpy(), alpha.clamp(0, 1).cpu().numpy()
        if rgb is None:  # straight alpha: the colour over black divided by its coverage
            straight = np.where(alpha[..., None] > 0, color / np.maximum(alpha, 1e-6)[..., None], 0)
            pixels = np.concatenate([np.clip(straight, 0, 1), alpha[..., None]], axis=-1)
        else:
            pixels = color
        path = out / f"{view.name}.png"
        write_ldr(path, np.round(pixels * 255.0).astype(np.uint8))  # one-line ImageError
        if view.truth is not None:
            over = np.asarray(rgb if rgb is not None else (1.0, 1.0, 1.0), np.float32)
            truth = composite(view.truth, over)
            mine = color if rgb is not None else color + (1 - alpha[..., None]) * over
            per_view.append(
                {"view": view.name, "psnr_db": psnr(mine, truth), "ssim": ssim(mine, truth)}
            )
        bar.update(1)
    bar.close()
    metrics: dict = {"views": len(views), "background": background}
    if per_view:
        metrics["psnr_db"] = float(np.mean([v["psnr_db"] for v in per_view]))
        metrics["ssim"] = float(np.mean([v["ssim"] for v in per_view]))
        metrics["per_view"] = per_view
        with atomic_path(out / "metrics.json") as tmp:
            tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
