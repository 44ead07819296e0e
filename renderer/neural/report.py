"""How close a bake came: held-out error, lobe images and sampler quality.

Written next to the output as `X.report.json` and `X.lobes.png`:

- held-out BRDF error on uv, wi, wo drawn uniformly (uv square, both hemispheres), with a
  seed the training never used, against the reference averaged over `heldout_samples`
  evaluations: PSNR of f*cos (peak 1), PSNR of f*cos tonemapped by x / (1 + x), and the
  training loss (L1 of log(f*cos + 0.01), metrics.py). The linear PSNR of a glossy
  material is decided by the few queries that land in a near-specular peak (values in
  the thousands), so it swings with luck; the tonemapped PSNR weighs errors as an image
  of the lobe would. A second, independent reference gives the noise floor: the PSNR the
  reference reaches against itself.
- coarser mip levels (1, 3, 5) against the reference averaged over one of their texels
  (the footprint the coarse levels are trained on, references.py):
  tonemapped PSNR and log-L1, and the finest level's PSNR at the same points, which is
  what reading an unfiltered texture would give.
- `X.lobes.png`: rows are (uv, view direction wo at 0/30/60/75 degrees); columns are
  reference f*cos over the hemisphere of wi, the neural f*cos, and the learned sampler's
  density scaled to the same integral. Hemispheres are orthographic (wi.xy on the disc);
  each row has one exposure.
- the bake itself (`bake_report`): material, preset, seed, device, pyramid, final losses
  and seconds per stage, beside the metrics above and the energy table's summary.
- sampler quality, against the learned BRDF (what it was fitted to): KL divergence (mean over
  view directions) and chi-square divergence (the relative variance of a
  one-sample estimate of the reflectance) of the learned sampler, and of cosine sampling
  for comparison; and how often the learned BRDF reflects more than it receives
  (albedo > 1.05), which is where a neural BRDF extrapolates badly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import json_output
from ..captions import caption_bar, captioned
from ..image_io import LUMINANCE, atomic_path, linear_to_srgb, write_ldr
from ..materials import MaterialQueries
from .directions import cosine_hemisphere, uniform_hemisphere
from .energy import energy_summary
from .metrics import LOG_OFFSET, log_l1_np, psnr, tonemap
from .nmat import NeuralMaterial
from .presets import BakePreset
from .sampler import NeuralSampler

LOBE_VIEW_ANGLES = (0.0, 30.0, 60.0, 75.0)
LOBE_UVS = ((0.3, 0.3), (0.7, 0.6))
LOBE_SIZE = 64
LOBE_SAMPLES = 64
LOD_LEVELS = (1, 3, 5)
LOD_QUERIES = 4096
LOD_GRID = 4
LOD_SAMPLES = 2
SAMPLER_DIRECTIONS = 256
SAMPLER_SAMPLES = 256


def heldout_queries(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    g = torch.Generator().manual_seed(seed)
    uv = torch.rand(count, 2, generator=g)
    wi = uniform_hemisphere(torch.rand(count, 2, generator=g))
    wo = uniform_hemisphere(torch.rand(count, 2, generator=g))
    return uv.numpy(), wi.numpy(), wo.numpy()


def heldout_error(
    material: NeuralMaterial, queries: MaterialQueries, count: int, samples: int, seed: int
) -> dict[str, float]:
    uv, wi, wo = heldout_queries(count, seed)
    reference = queries.evaluate(uv, wi, wo, samples, seed=seed + 1)
    second = queries.evaluate(uv, wi, wo, samples, seed=seed + 2)
    neural = material.evaluate(
        torch.from_numpy(uv), torch.from_numpy(wi), torch.from_numpy(wo)
    ).numpy()
    log_ratio = np.log(neural.mean(1) + LOG_OFFSET) - np.log(reference.mean(1) + LOG_OFFSET)
    return {
        "psnr_db": round(psnr(neural, reference), 3),
        "psnr_tonemapped_db": round(psnr(tonemap(neural), tonemap(reference)), 3),
        "log_l1": round(log_l1_np(neural, reference), 5),
        # queries where neural and reference differ by more than 10x (beyond the 0.01 floor)
        "outliers_10x_fraction": round(float(np.mean(np.abs(log_ratio) > math.log(10.0))), 6),
        "reference_noise_psnr_db": round(psnr(second, reference), 3),
        "reference_noise_psnr_tonemapped_db": round(psnr(tonemap(second), tonemap(reference)), 3),
        "queries": count,
        "reference_samples": samples,
    }


def lod_error(
    material: NeuralMaterial, queries: MaterialQueries, seed: int
) -> dict[str, dict[str, Any]]:
    """Coarser levels against what they stand for: the reference averaged over the
    footprint of one texel of that level (a stratified 4x4 grid of uv in it). The finest
    level read at the same points shows what prefiltering buys."""
    arch = material.arch
    uv, wi, wo = heldout_queries(LOD_QUERIES, seed)
    n, k = len(uv), LOD_GRID
    offsets = (np.arange(k) + 0.5) / k - 0.5
    jitter = np.stack(np.meshgrid(offsets, offsets), -1).reshape(-1, 2)  # [k*k, 2]
    t = [torch.from_numpy(a) for a in (uv, wi, wo)]
    out: dict[str, dict[str, Any]] = {}
    for level in (lvl for lvl in LOD_LEVELS if lvl < len(arch.levels)):
        h, w = arch.levels[level]
        spots = np.mod(uv[:, None, :] + jitter[None] / np.array([w, h]), 1.0).astype(np.float32)
        reference = queries.evaluate(
            spots.reshape(-1, 2),
            np.repeat(wi, k * k, axis=0),
            np.repeat(wo, k * k, axis=0),
            LOD_SAMPLES,
            seed=seed + level,
        )
        reference = reference.reshape(n, k * k, 3).mean(1)
        coarse = material.evaluate(*t, level=torch.full((n,), level)).numpy()
        finest = material.evaluate(*t).numpy()
        out[str(level)] = {
            "texels": [h, w],
            "psnr_tonemapped_db": round(psnr(tonemap(coarse), tonemap(reference)), 3),
            "finest_level_psnr_tonemapped_db": round(psnr(tonemap(finest), tonemap(reference)), 3),
            "log_l1": round(log_l1_np(coarse, reference), 5),
        }
    return out


def _hemisphere_grid(size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """wi [size*size, 3] on the orthographic disc, inside mask, and dx*dy per pixel."""
    c = (np.arange(size) + 0.5) / size * 2 - 1
    x, y = np.meshgrid(c, -c)  # row 0 at the top (+y)
    r2 = x * x + y * y
    inside = r2 < 1.0
    z = np.sqrt(np.clip(1.0 - r2, 1e-6, None))
    wi = np.stack([x, y, z], -1).reshape(-1, 3).astype(np.float32)
    wi /= np.linalg.norm(wi, axis=1, keepdims=True)
    return wi, inside.reshape(-1), (2.0 / size) ** 2


def lobe_image(material: NeuralMaterial, queries: MaterialQueries, seed: int) -> np.ndarray:
    wi, inside, cell = _hemisphere_grid(LOBE_SIZE)
    n = len(wi)
    rows = []
    for uv0 in LOBE_UVS:
        for angle in LOBE_VIEW_ANGLES:
            t = math.radians(angle)
            wo = np.tile(np.array([[math.sin(t), 0.0, math.cos(t)]], np.float32), (n, 1))
            uv = np.tile(np.array([uv0], np.float32), (n, 1))
            ref = queries.evaluate(uv[inside], wi[inside], wo[inside], LOBE_SAMPLES, seed=seed)
            reference = np.zeros((n, 3), np.float32)
            reference[inside] = ref
            tw = [torch.from_numpy(a) for a in (uv, wi, wo)]
            neural = material.evaluate(*tw).numpy() * inside[:, None]
            with torch.no_grad():
                latent = material.pyramid()(tw[0], torch.zeros(n, dtype=torch.long))
                lobes = material.sampler.lobes(latent, tw[2])
                pdf = NeuralSampler.pdf(lobes, tw[2], tw[1]).numpy() * inside
            # solid angle of a pixel of the orthographic disc is dx dy / cos(theta)
            solid = cell / wi[:, 2]
            albedo = float(np.sum((neural @ LUMINANCE) * solid * inside))
            density = np.repeat((pdf * albedo)[:, None], 3, axis=1)
            scale = 1.0 / max(float(np.percentile(reference[inside], 99.5)), 1e-6)
            tiles = [reference, neural, density]
            rows.append(
                [np.clip(tile * scale, 0, 1).reshape(LOBE_SIZE, LOBE_SIZE, 3) for tile in tiles]
            )
    return lobe_grid(rows)


def lobe_grid(rows: list[list[np.ndarray]]) -> np.ndarray:
    """The lobe tiles as one 8-bit image, each row captioned with its uv and view angle
    and the columns named at the top (see lobe_columns)."""
    gap = 2
    tile = rows[0][0].shape[0]
    width = len(rows[0]) * (tile + gap) + gap
    names = lobe_columns()
    # the columns' first words (reference, neural, sampler): the full names are in the JSON
    heads = [(gap + c * (tile + gap), n.split(" ")[0]) for c, n in enumerate(names["columns"])]
    parts = [caption_bar(width, heads)]
    for label, tiles in zip(names["rows"], rows, strict=True):
        canvas = np.full((tile + 2 * gap, width, 3), 0.15, np.float32)
        for c, image in enumerate(tiles):
            x = gap + c * (tile + gap)
            canvas[gap : gap + tile, x : x + tile] = image
        parts.append(captioned((linear_to_srgb(canvas) * 255 + 0.5).astype(np.uint8), label))
    return np.concatenate(parts, axis=0)


def sampler_quality(material: NeuralMaterial, seed: int) -> dict[str, float]:
    """Divergences of the learned sampler and of cosine sampling from the normalised
    luminance of the learned f*cos, per view direction. The reflectance each is normalised
    by is the balance-heuristic combination of both sample sets, so a lobe one technique
    misses still counts against it."""
    g = torch.Generator().manual_seed(seed)
    m, s = SAMPLER_DIRECTIONS, SAMPLER_SAMPLES
    uv = torch.rand(m, 2, generator=g).repeat_interleave(s, 0)
    wo = uniform_hemisphere(torch.rand(m, 2, generator=g)).repeat_interleave(s, 0)
    level = torch.zeros(len(uv), dtype=torch.long)
    lum = torch.tensor(LUMINANCE, dtype=torch.float32)
    with torch.no_grad():
        latent = material.pyramid()(uv, level)
        lobes = material.sampler.lobes(latent, wo)
        wi_l, valid = NeuralSampler.sample(lobes, wo, torch.rand(len(uv), 3, generator=g))
        wi_c = cosine_hemisphere(torch.rand(len(uv), 2, generator=g))

        def measure(wi: torch.Tensor, ok: torch.Tensor) -> tuple[torch.Tensor, ...]:
            f = material.brdf(latent, wi, wo) @ lum
            p_l = NeuralSampler.pdf(lobes, wo, wi)
            p_c = torch.clamp(wi[:, 2], min=0.0) / math.pi
            f = torch.where(ok, f, 0.0).double().reshape(m, s)
            return f, p_l.double().reshape(m, s), p_c.double().reshape(m, s)

        f_l, pl_l, pc_l = measure(wi_l, valid & (wi_l[:, 2] > 0))
        f_c, pl_c, pc_c = measure(wi_c, wi_c[:, 2] > 0)
    mis = (f_l / (pl_l + pc_l).clamp(min=1e-30)).sum(1) + (
        f_c / (pl_c + pc_c).clamp(min=1e-30)
    ).sum(1)
    albedo = mis / s
    keep = albedo > 1e-6

    def divergences(f: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = torch.where(p > 0, f / p.clamp(min=1e-30), 0.0)[keep] / albedo[keep, None]
        kl = torch.where(q > 0, q * torch.log(q.clamp(min=1e-30)), 0.0).mean(1)
        return kl, (q * q).mean(1) - 1.0

    kl_l, chi_l = divergences(f_l, pl_l)
    kl_c, chi_c = divergences(f_c, pc_c)
    return {
        "kl_learned": round(float(kl_l.mean()), 4),
        "kl_cosine": round(float(kl_c.mean()), 4),
        "chi2_learned": round(float(chi_l.mean()), 4),
        "chi2_cosine": round(float(chi_c.mean()), 4),
        # a neural BRDF can create energy where it extrapolates; >1.05 is worth knowing
        "albedo_over_1_05_fraction": round(float((albedo > 1.05).double().mean()), 4),
        "max_albedo": round(float(albedo.max()), 4),
        "view_directions": m,
        "samples_per_direction": s,
    }


def report_paths(output: Path) -> tuple[Path, Path]:
    return output.with_name(output.stem + ".report.json"), output.with_name(
        output.stem + ".lobes.png"
    )


def measure(
    material: NeuralMaterial,
    queries: MaterialQueries,
    preset: BakePreset,
    seed: int,
    progress: Callable[[], None] = lambda: None,
) -> tuple[dict[str, Any], np.ndarray]:
    """The report's metrics of `material` against the reference `queries`, and its lobe
    image; `progress()` is called after each of the 4 parts."""
    heldout = heldout_error(material, queries, preset.heldout_queries, preset.heldout_samples, seed)
    progress()
    lod = lod_error(material, queries, seed + 5)
    progress()
    sampler = sampler_quality(material, seed + 3)
    progress()
    lobes = lobe_image(material, queries, seed + 4)
    progress()
    return {"heldout": heldout, "lod": lod, "sampler": sampler}, lobes


def bake_report(
    material: NeuralMaterial,
    metrics: dict[str, Any],
    *,
    source: Path,
    source_hash: str,
    output: Path,
    preset: BakePreset,
    seed: int,
    device: str,
    losses: dict[str, float],
    seconds: dict[str, float],
) -> dict[str, Any]:
    """What X.report.json holds: the bake's configuration and cost, and `metrics`
    (from `measure`)."""
    arch = material.arch
    return {
        "material": str(source),
        "source_hash": source_hash,
        "output": str(output),
        "preset": preset.name,
        "seed": seed,
        "device": device,
        "pyramid": {
            "finest": [arch.height, arch.width],
            "levels": len(arch.levels),
            "parameter_channels": arch.parameter_channels,
        },
        "losses": losses,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "metrics": metrics,
        "energy": energy_summary(material.energy.numpy()) if material.energy is not None else None,
        "lobes_png": {"path": report_paths(output)[1].name, **lobe_columns()},
    }


def lobe_columns() -> dict[str, Any]:
    """What the rows and columns of the lobe image show (for the JSON report)."""
    return {
        "rows": [f"uv {u}, wo at {a} deg" for u in LOBE_UVS for a in LOBE_VIEW_ANGLES],
        "columns": ["reference f*cos", "neural f*cos", "sampler pdf x albedo"],
    }


def write_report(output: Path, report: dict[str, Any], lobes: np.ndarray) -> list[Path]:
    """Write `output`'s X.report.json and X.lobes.png (each through a rename)."""
    json_path, png_path = report_paths(output)
    write_ldr(png_path, lobes)
    text = json_output.dumps(report, indent=2)
    with atomic_path(json_path) as tmp:
        tmp.write_text(text + "\n")
    return [json_path, png_path]
