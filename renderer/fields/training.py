"""Training a radiance field from posed images: `nrender nerf train`.

    result = train_field("data/lego", "lego.nfield", PRESETS["quick"])

Each step draws `batch_rays` random pixels of the training views (a uniform point inside
each pixel, as a render box-filters it), marches them through the field with the
occupancy grid (marching.py) and takes an Adam step on the squared error of the colour.
Targets are composited over a random colour per ray (views without alpha are opaque),
so the field learns transparency instead of a background; evaluation uses white, as the
NeRF protocol does.
Every `occupancy_interval` steps the occupancy grid takes the field's density (occupancy.py),
with the threshold at which a sample's opacity is 1%.

A checkpoint (`X.nfield.ckpt`, the field, the optimiser's moments and the occupancy
densities) is written every `checkpoint_seconds` and on a stop request (Ctrl-C), and
`resume=True` continues from it exactly where it stopped. At the end the field is written
(temporary file + rename) and measured on the test views: PSNR and SSIM over white,
`X.report.json`, and a few test views beside their ground truth as PNGs.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import NrenderError
from ..image_io import atomic_path, write_ldr
from ..neural.baking import torch_device
from ..neural.checkpoint import CheckpointStore
from ..neural.interruption import StopRequest
from ..neural.metrics import psnr, ssim
from ..neural.progress import progress_bar
from .cameras import pixel_rays
from .hash_grid import HashGridConfig
from .marching import render_image, render_rays
from .nerf import NerfConfig, NerfField, parameter_count
from .nfield import NerfFile
from .occupancy import OccupancyGrid

REPORT_IMAGES = 3  # test views written beside their ground truth
WHITE = (1.0, 1.0, 1.0)
PRUNE_TRANSMITTANCE = 1e-3  # samples behind this much transmittance are left out of a step


class TrainingInterrupted(NrenderError):  # noqa: N818 - a request honoured, not a failure
    """Training stopped on request after saving a checkpoint."""


@dataclass(frozen=True)
class TrainPreset:
    name: str
    config: NerfConfig
    steps: int
    batch_rays: int
    learning_rate: float
    final_learning_rate: float  # reached by exponential decay at the last step
    occupancy_interval: int = 16
    occupancy_decay: float = 0.95
    checkpoint_seconds: float = 60.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["config"] = json.loads(self.config.to_json())
        return data

    def with_steps(self, steps: int) -> TrainPreset:
        return replace(self, steps=steps)


PRESETS = {
    # Minutes on a 2-core CPU for 128x128 views: a coarser grid (12 levels up to 512
    # cells, 2^16 entries), 192 samples along the box diagonal, a 64^3 occupancy grid.
    "quick": TrainPreset(
        name="quick",
        config=NerfConfig(
            grid=HashGridConfig(
                levels=12, features=2, log2_table=16, base_resolution=16, max_resolution=512
            ),
            occupancy_resolution=64,
            march_steps=192,
        ),
        steps=1500,
        batch_rays=1024,
        learning_rate=1e-2,
        final_learning_rate=1e-3,
    ),
    # Instant-NGP's field (16 levels x 2 features, 2^19 entries, 16 -> 2048 cells) with
    # 1024 samples along the diagonal and a 128^3 occupancy grid: sized for a GPU.
    "default": TrainPreset(
        name="default",
        config=NerfConfig(),
        steps=8000,
        batch_rays=8192,
        learning_rate=1e-2,
        final_learning_rate=3e-4,
    ),
}


class _OccupancyState(nn.Module):
    """The occupancy grid's densities as module buffers, so checkpoints carry them."""

    def __init__(self, grid: OccupancyGrid) -> None:
        super().__init__()
        self.register_buffer("density", grid.density)
        self.register_buffer("updates", torch.tensor(grid.updates))

    def capture(self, grid: OccupancyGrid) -> None:
        self.density = grid.density
        self.updates = torch.tensor(grid.updates)

    def restore(self, grid: OccupancyGrid, threshold: float) -> None:
        grid.density = self.density.to(grid.density.device)
        grid.updates = int(self.updates)
        inside = grid.density[grid.hull]
        level = min(threshold, float(inside.mean())) if len(inside) else threshold
        grid.occupied = (grid.density > level) & grid.hull


@dataclass
class TrainResult:
    file: NerfFile
    report: dict[str, Any]
    written: list[Path] = field(default_factory=list)


def occupancy_threshold(field_: NerfField) -> float:
    """The density at which one marching step is 1% opaque."""
    return -math.log(1.0 - 0.01) / field_.step


def train_field(
    dataset_dir: str | Path,
    output: str | Path,
    preset: TrainPreset,
    *,
    device: str = "auto",
    seed: int = 0,
    resume: bool = False,
    fresh: bool = False,
    progress: bool = True,
    stop: StopRequest | None = None,
    max_seconds: float | None = None,
) -> TrainResult:
    """Train a field on the `train` split of `dataset_dir`, write it to `output` and its
    report beside it. Raises TrainingInterrupted when `stop()` turns true (checkpoint
    saved); `max_seconds` ends training early (not an interruption: the field is written)."""
    from .dataset import dataset_hash, load_dataset

    dataset_dir, output = Path(dataset_dir), Path(output)
    stop = stop or (lambda: False)
    dev = torch_device(device)
    train = load_dataset(dataset_dir, "train")
    evaluation = _evaluation_split(dataset_dir)
    digest = dataset_hash(dataset_dir)
    fingerprint = hashlib.sha256(
        json.dumps([digest, preset.to_dict(), seed], sort_keys=True).encode()
    ).hexdigest()
    store = CheckpointStore(output, fingerprint, source="dataset")
    store.check_start(resume, fresh)

    model = NerfField(preset.config, torch.from_numpy(train.aabb).float(), seed=seed).to(dev)
    occupancy = OccupancyGrid(preset.config.occupancy_resolution, dev)
    hull_share = 1.0
    if train.has_alpha:  # the same carve on a resume: it depends on the dataset only
        hull_share = occupancy.carve(train.images[..., 3], train.c2w, train.focal, train.aabb)
    occupancy_state = _OccupancyState(occupancy)
    threshold = occupancy_threshold(model)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=preset.learning_rate, betas=(0.9, 0.99), eps=1e-15
    )
    step, seconds = 0, 0.0
    if resume:
        checkpoint = store.load()
        modules: dict[str, nn.Module] = {"field": model, "occupancy": occupancy_state}
        checkpoint.restore(modules, optimizer, store.path)
        occupancy_state.restore(occupancy, threshold)
        step, seconds = checkpoint.step, checkpoint.seconds.get("train", 0.0)

    images = torch.from_numpy(train.images).to(dev)  # [N, H, W, 4]
    c2w = torch.from_numpy(train.c2w).float().to(dev)
    n_views, height, width = images.shape[:3]
    focal = train.focal
    decay = (preset.final_learning_rate / preset.learning_rate) ** (1.0 / max(preset.steps, 1))
    generator = torch.Generator()
    loss_value, last_save = float("nan"), time.perf_counter()
    start = time.perf_counter() - seconds
    bar = progress_bar(progress, preset.steps, "train", "step", initial=step)

    def save_checkpoint() -> None:
        occupancy_state.capture(occupancy)
        store.save(
            0,
            step,
            {"field": model, "occupancy": occupancy_state},
            optimizer,
            {"loss": loss_value},
            {"train": time.perf_counter() - start},
            [],
        )

    try:
        while step < preset.steps:
            if stop():
                save_checkpoint()
                raise TrainingInterrupted(
                    f"training stopped at step {step}; checkpoint {store.path}"
                )
            if max_seconds is not None and time.perf_counter() - start >= max_seconds:
                break
            # every step draws from its own seed, so a resumed run repeats exactly the
            # steps an uninterrupted one would have taken
            generator.manual_seed(seed * 1_000_003 + step)
            if step % preset.occupancy_interval == 0:
                model.eval()
                occupancy.update(
                    model, threshold, preset.occupancy_decay, fraction=0.25, generator=generator
                )
                model.train()
            for group in optimizer.param_groups:
                group["lr"] = preset.learning_rate * decay**step
            pick = torch.randint(
                n_views * height * width, (preset.batch_rays,), generator=generator
            )
            view, rest = pick // (height * width), pick % (height * width)
            row, col = rest // width, rest % width
            inside = torch.rand((preset.batch_rays, 2), generator=generator)
            pixels = torch.stack([col, row], dim=-1).float() + inside
            pixels, view = pixels.to(dev), view.to(dev)
            origins, dirs = pixel_rays(c2w[view], focal, width, height, pixels)
            target = images[view, row.to(dev), col.to(dev)]
            # a random colour per ray: views with alpha teach transparency, opaque ones
            # (alpha 1) teach the field to be opaque where they show anything
            background = torch.rand((preset.batch_rays, 3), generator=generator).to(dev)
            target_rgb = target[:, :3] * target[:, 3:] + background * (1.0 - target[:, 3:])
            jitter = torch.rand(preset.batch_rays, generator=generator).to(dev)
            color, _ = render_rays(
                model, occupancy, origins, dirs, background, jitter, prune=PRUNE_TRANSMITTANCE
            )
            loss = torch.mean((color - target_rgb) ** 2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_value = float(loss.detach())
            step += 1
            bar.update(1)
            bar.set_postfix(
                loss=f"{loss_value:.2e}",
                psnr=f"{-10.0 * math.log10(max(loss_value, 1e-12)):.1f}",
                occupied=f"{occupancy.occupied_share():.1%}",
            )
            if time.perf_counter() - last_save >= preset.checkpoint_seconds:
                save_checkpoint()
                last_save = time.perf_counter()
    finally:
        bar.close()
    train_seconds = time.perf_counter() - start
    model.eval()
    occupancy.update(model, threshold, preset.occupancy_decay, fraction=1.0, generator=generator)
    stats = {
        "steps": step,
        "seconds": round(train_seconds, 2),
        "final_batch_loss": loss_value,
        "final_batch_psnr_db": -10.0 * math.log10(max(loss_value, 1e-12)),
        "occupied_share": occupancy.occupied_share(),
        "visual_hull_share": hull_share,
        "device": str(dev),
    }
    nerf = NerfFile(
        model,
        occupancy,
        train.scene_from_dataset,
        {
            "dataset": str(dataset_dir.resolve()),  # nerf render may run elsewhere
            "dataset_hash": digest,
            "preset": json.dumps(preset.to_dict(), sort_keys=True),
            "training": json.dumps(stats),
        },
    )
    nerf.save(output)
    store.discard()
    report, written = write_report(nerf, evaluation, output, stats, progress, stop)
    return TrainResult(nerf, report, [output, *written])


def _evaluation_split(dataset_dir: Path) -> Any:
    """The test views, else the validation views (a dataset may hold only train)."""
    from .dataset import load_dataset

    for split in ("test", "val"):
        if (dataset_dir / f"transforms_{split}.json").exists():
            return load_dataset(dataset_dir, split)
    return None


def evaluate_views(
    nerf: NerfFile,
    dataset: Any,
    progress: bool = False,
    background: tuple = WHITE,
    stop: StopRequest | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray], list[float], list[float]]:
    """Renders of every view of `dataset`, their ground truth over `background`, and the
    PSNR and SSIM of each (colours as stored: sRGB values in [0, 1]). When `stop()` turns
    true the views rendered so far are returned (and as many ground truths)."""
    from .dataset import composite

    dev = nerf.field.aabb.device
    bg = torch.tensor(background, dtype=torch.float32, device=dev)
    truths = composite(dataset.images, np.asarray(background, np.float32))
    renders, psnrs, ssims = [], [], []
    bar = progress_bar(progress, len(truths), "evaluate", "view")
    for i, truth in enumerate(truths):
        if stop is not None and stop():
            break
        c2w = torch.from_numpy(dataset.c2w[i]).float()
        color, _ = render_image(
            nerf.field, nerf.occupancy, c2w, dataset.focal, dataset.width, dataset.height, bg
        )
        image = color.clamp(0.0, 1.0).cpu().numpy()
        renders.append(image)
        psnrs.append(psnr(image, truth))
        ssims.append(ssim(image, truth))
        bar.update(1)
    bar.close()
    return renders, list(truths[: len(renders)]), psnrs, ssims


def write_report(
    nerf: NerfFile,
    evaluation: Any,
    output: Path,
    stats: dict[str, Any],
    progress: bool,
    stop: StopRequest | None = None,
) -> tuple[dict[str, Any], list[Path]]:
    """The report beside `output`, with PSNR and SSIM over the evaluation views. A stop
    request during the evaluation ends it early: the report then holds the views done so
    far (`"stopped": true`, no means when there are none)."""
    report: dict[str, Any] = {
        "field": str(output),
        "dataset": nerf.metadata["dataset"],
        "preset": json.loads(nerf.metadata["preset"]),
        "parameters": parameter_count(nerf.field),
        "training": stats,
    }
    written: list[Path] = []
    if evaluation is not None:
        renders, truths, psnrs, ssims = evaluate_views(nerf, evaluation, progress, stop=stop)
        report["evaluation"] = {
            "split": evaluation.split,
            "views": len(renders),
            "background": "white",
            "psnr_db_per_view": [round(p, 3) for p in psnrs],
        }
        if renders:
            report["evaluation"]["psnr_db"] = float(np.mean(psnrs))
            report["evaluation"]["ssim"] = float(np.mean(ssims))
        if len(renders) < len(evaluation.c2w):
            report["evaluation"].update(stopped=True, views_in_split=len(evaluation.c2w))
        for i in range(min(REPORT_IMAGES, len(renders))):
            path = output.with_name(f"{output.stem}.{evaluation.split}_{i:03d}.png")
            side = np.concatenate([renders[i], truths[i]], axis=1)
            write_ldr(path, np.round(np.clip(side, 0.0, 1.0) * 255.0).astype(np.uint8))
            written.append(path)
    path = output.with_name(output.stem + ".report.json")
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    written.append(path)
    return report, written


__all__ = [
    "PRESETS",
    "TrainPreset",
    "TrainResult",
    "TrainingInterrupted",
    "evaluate_views",
    "train_field",
]
