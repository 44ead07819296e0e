"""What baking fits: reference f*cos of the layered material, at points and over footprints.

    points       (uv, wi, wo) pairs (directions.py) and their f*cos, each the mean of
                 `target_samples` stochastic evaluations: the targets of the finest level
    footprints   pairs of their own, each given one coarse level (all coarse levels equally
                 often) and, as its target, the mean f*cos over the footprint of one texel
                 of that level centred on its uv: a `footprint_grid` x `footprint_grid`
                 stratified, jittered grid of uv, `footprint_samples` evaluations each

A coarse texel stands for the average of the material over its footprint; that is what the
path tracer's level of detail asks of it and what the report's `lod` section scores it
against. Fitted to point references, the log-space L1 loss (metrics.py) would pull it to
the log-median of its footprint instead: a patchy material's minority (verdigris on brass,
dust) would vanish from its coarse levels.

Every evaluation goes through renderer.materials.MaterialQueries, the Slang reference the
path tracer runs, not a copy of it. Seeds depend on (seed, row) only, so the references
are the same however they are chunked and whether or not the bake was resumed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import NrenderError
from ..materials import MaterialQueries
from .directions import FINEST_LEVEL_PROBABILITY, training_pairs
from .interruption import BakeInterrupted, StopRequest
from .presets import BakePreset

REFERENCE_CHUNK = 1 << 16  # queries per call into the reference: bounds its memory
FOOTPRINT_PAIRS_SEED = 2  # training_pairs(n, seed) uses seed and seed + 1 for the points
FOOTPRINT_SEED_STREAM = 1 << 30  # keeps footprint evaluation seeds apart from the points'


@dataclass
class ReferenceSet:
    """Lookups and their targets: uv [N, 2], level [N] (long), wi, wo [N, 3], target [N, 3]."""

    uv: torch.Tensor
    level: torch.Tensor
    wi: torch.Tensor
    wo: torch.Tensor
    target: torch.Tensor

    def __len__(self) -> int:
        return len(self.uv)

    def take(self, pick: torch.Tensor) -> ReferenceSet:
        return ReferenceSet(
            self.uv[pick], self.level[pick], self.wi[pick], self.wo[pick], self.target[pick]
        )


@dataclass
class TrainingReferences:
    """Point references for the finest level, footprint references for the coarse ones
    (empty when the pyramid has one level)."""

    points: ReferenceSet
    footprints: ReferenceSet

    def brightest(self) -> float:
        """The largest target value: the decoder's output is capped relative to it."""
        values = [float(s.target.max()) for s in (self.points, self.footprints) if len(s)]
        return max(values)

    def batch(self, generator: torch.Generator, size: int) -> ReferenceSet:
        """One training batch: the finest level with probability FINEST_LEVEL_PROBABILITY
        (a point reference), else a footprint reference at its own coarse level, so every
        level is trained for the footprints the path tracer will ask for. Its random
        choices come from `generator` alone (a resumed bake draws the same batches)."""
        device = self.points.uv.device
        pick = torch.randint(len(self.points), (size,), generator=generator).to(device)
        points = self.points.take(pick)
        if not len(self.footprints):
            return points
        pick = torch.randint(len(self.footprints), (size,), generator=generator).to(device)
        coarse = (torch.rand(size, generator=generator) >= FINEST_LEVEL_PROBABILITY).to(device)
        footprints = self.footprints.take(pick)

        def blend(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            mask = coarse.reshape(-1, *([1] * (a.dim() - 1)))
            return torch.where(mask, b, a)

        return ReferenceSet(
            blend(points.uv, footprints.uv),
            blend(points.level, footprints.level),
            blend(points.wi, footprints.wi),
            blend(points.wo, footprints.wo),
            blend(points.target, footprints.target),
        )


def footprint_count(preset: BakePreset, level_count: int) -> int:
    """How many footprint references a bake of `level_count` levels evaluates."""
    if level_count == 1:
        return 0
    return max(1, round(preset.train_queries * preset.footprint_fraction))


def reference_queries(preset: BakePreset, level_count: int) -> int:
    """Reference queries (rows) a bake evaluates in all: for its progress bar."""
    per_footprint = preset.footprint_grid**2
    return preset.train_queries + footprint_count(preset, level_count) * per_footprint


def footprint_lookups(
    count: int, levels: list[tuple[int, int]], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`count` footprint lookups: uv [M, 2], level [M] (1 ... len(levels) - 1, equally
    often), wi, wo [M, 3]. Deterministic for a seed."""
    uv, wi, wo = training_pairs(count, seed + FOOTPRINT_PAIRS_SEED)
    g = torch.Generator().manual_seed(seed)
    # a shuffled round robin: every coarse level gets the same number of pairs
    level = 1 + torch.randperm(count, generator=g) % (len(levels) - 1)
    return uv, level.numpy(), wi, wo


def footprint_spots(
    uv: np.ndarray, level: np.ndarray, levels: list[tuple[int, int]], grid: int, seed: int
) -> np.ndarray:
    """uv [M, 2] at `level` [M] -> [M, grid*grid, 2]: one jittered point per cell of a
    grid x grid stratification of the texel-sized box centred on each uv (the footprint
    report.lod_error averages over), wrapped into [0, 1)."""
    g = torch.Generator().manual_seed(seed)
    cells = np.stack(np.meshgrid(np.arange(grid), np.arange(grid)), -1).reshape(-1, 2)
    jitter = torch.rand(len(uv), grid * grid, 2, generator=g, dtype=torch.float64).numpy()
    offsets = (cells[None] + jitter) / grid - 0.5  # [M, grid*grid, 2] in texels of the level
    texel = 1.0 / np.array([(w, h) for h, w in levels], np.float64)[level]  # [M, 2] in uv
    return np.mod(uv[:, None, :] + offsets * texel[:, None, :], 1.0).astype(np.float32)


def evaluate_references(
    queries: MaterialQueries,
    preset: BakePreset,
    levels: list[tuple[int, int]],
    seed: int,
    device: torch.device,
    *,
    stop: StopRequest,
    advance: Callable[[int], None] = lambda rows: None,
    source: str = "material",
) -> TrainingReferences:
    """Evaluate the training references of a pyramid with `levels` [(h, w), ...] (finest
    first); `advance(rows)` is called after each call into the reference, `stop()` before
    it."""
    uv, wi, wo = training_pairs(preset.train_queries, seed)
    target = np.zeros((len(uv), 3), np.float32)
    for start in range(0, len(uv), REFERENCE_CHUNK):
        if stop():
            raise BakeInterrupted("interrupted while evaluating references")
        end = min(start + REFERENCE_CHUNK, len(uv))
        target[start:end] = queries.evaluate(
            uv[start:end],
            wi[start:end],
            wo[start:end],
            preset.target_samples,
            seed=_chunk_seed(seed, 0, start),
        )
        advance(end - start)
    count = footprint_count(preset, len(levels))
    fp_uv, fp_wi, fp_wo, fp_target = (np.zeros((count, n), np.float32) for n in (2, 3, 3, 3))
    fp_level = np.zeros(count, np.int64)
    if count:  # a one-level pyramid has no coarse level
        fp_uv, fp_level, fp_wi, fp_wo = footprint_lookups(count, levels, seed)
    per = preset.footprint_grid**2
    block = max(1, REFERENCE_CHUNK // per)  # whole footprints per call, memory bounded
    for start in range(0, count, block):
        if stop():
            raise BakeInterrupted("interrupted while evaluating references")
        end = min(start + block, count)
        # numbered by row, as the points are; jitter from the same seed (blocks are fixed
        # by the preset's grid, so the footprints are a function of seed and preset)
        chunk_seed = _chunk_seed(seed, FOOTPRINT_SEED_STREAM, start * per)
        spots = footprint_spots(
            fp_uv[start:end], fp_level[start:end], levels, preset.footprint_grid, chunk_seed
        )
        rows = queries.evaluate(
            spots.reshape(-1, 2),
            np.repeat(fp_wi[start:end], per, axis=0),
            np.repeat(fp_wo[start:end], per, axis=0),
            preset.footprint_samples,
            seed=chunk_seed,
        )
        fp_target[start:end] = rows.reshape(end - start, per, 3).mean(1)
        advance((end - start) * per)
    if not (np.isfinite(target).all() and np.isfinite(fp_target).all()):
        raise NrenderError(f"{source}: the reference produced non-finite values")

    def on_device(*arrays: np.ndarray) -> list[torch.Tensor]:
        return [torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays]

    finest = np.zeros(len(uv), np.int64)
    return TrainingReferences(
        ReferenceSet(*on_device(uv, finest, wi, wo, target)),
        ReferenceSet(*on_device(fp_uv, fp_level, fp_wi, fp_wo, fp_target)),
    )


def _chunk_seed(seed: int, stream: int, start: int) -> int:
    """The seed of a call into the reference, from its first row (so that a point's
    estimate does not depend on the chunking); streams keep the two sets' seeds apart."""
    return (seed * 7_919 + stream + start) & 0x7FFFFFFF
