"""The occupancy grid of a field: which cells of its box may hold density, so marching
skips the rest (Instant-NGP's empty-space skipping).

- G^3 cells over the unit box (G = occupancy_resolution); cell (i, j, k) holds unit points
  [i, i + 1) / G x ...; its index is i + G (j + G k).
- Training keeps a running density per cell: every `update` it takes the max of the old
  value times `decay` and the density at a random point in each refreshed cell. A cell is
  occupied while that value exceeds `threshold` (in densities per world unit), or the
  grid's mean when that is lower (so a field that is dim everywhere is never all empty).
- With alpha in the training views, `carve` first marks the cells that some view sees
  as background (a visual hull, Laurentini 1994): they stay empty for good, so training
  on a CPU does not spend its first minutes marching empty space while the density
  network learns that it is empty.
- Files and kernels hold only the bits: packed little-endian, bit (index % 8) of byte
  index / 8, which read as uint32 words is bit (index % 32) of word index / 32.
"""

from __future__ import annotations

import numpy as np
import torch

from .nerf import NerfField

# Fine cells per coarse block along each axis: the path tracer steps over a block whose
# cells are all empty at once (shaders/fields/nerf.slang; renderer/fields/nerf_buffers.py
# derives the blocks' bits at load, .nfield files hold only the fine grid).
COARSE_FACTOR = 8


def cell_index(unit: torch.Tensor, resolution: int) -> torch.Tensor:
    """[B] cell indices of unit-box points [B, 3] (clamped into the grid)."""
    c = (unit * resolution).long().clamp(0, resolution - 1)
    return c[:, 0] + resolution * (c[:, 1] + resolution * c[:, 2])


def pack_bits(occupied: torch.Tensor) -> np.ndarray:
    return np.packbits(occupied.cpu().numpy().astype(bool), bitorder="little")


def coarse_occupancy(occupied: torch.Tensor, resolution: int, factor: int) -> np.ndarray:
    """[C^3] bool, C = ceil(resolution / factor): whether any fine cell of each block of
    factor^3 cells is occupied (blocks past the grid's edge hold fewer cells). Block
    (bi, bj, bk) is index bi + C (bj + C bk), the fine grid's order."""
    g, c = resolution, -(-resolution // factor)
    padded = np.zeros((c * factor,) * 3, bool)
    padded[:g, :g, :g] = occupied.reshape(g, g, g).cpu().numpy()  # [k, j, i]
    return padded.reshape(c, factor, c, factor, c, factor).any(axis=(1, 3, 5)).reshape(-1)


def unpack_bits(packed: np.ndarray, cells: int) -> torch.Tensor:
    return torch.from_numpy(np.unpackbits(packed, count=cells, bitorder="little").astype(bool))


class OccupancyGrid:
    def __init__(self, resolution: int, device: torch.device | str = "cpu") -> None:
        self.resolution = resolution
        cells = resolution**3
        self.density = torch.zeros(cells, device=device)
        self.occupied = torch.ones(cells, dtype=torch.bool, device=device)
        self.updates = 0
        self.hull = torch.ones(cells, dtype=torch.bool, device=device)  # carve() clears cells

    @torch.no_grad()
    def carve(
        self,
        alpha: np.ndarray,
        c2w: np.ndarray,
        focal: float,
        aabb: np.ndarray,
        margin: float = 1.5,
    ) -> float:
        """Mark empty every cell whose centre some view sees as background (alpha 0 within
        the cell's projected half-size plus `margin` pixels). `alpha` [N, H, W]; returns
        the share of cells left. A cell that projects outside a view is not judged by it."""
        from .cameras import project

        n, height, width = alpha.shape
        lo, hi = np.asarray(aabb[0], np.float64), np.asarray(aabb[1], np.float64)
        centres = (self.cells.cpu().numpy() + 0.5) / self.resolution * (hi - lo) + lo
        half_cell = 0.5 * float(np.linalg.norm((hi - lo) / self.resolution))
        keep = np.ones(len(centres), bool)
        # a pixel is foreground when any pixel within r of it is: max over a square window
        # (r grows with the cell's footprint, which shrinks with distance: take it per view
        # at the box's nearest distance, a conservative bound)
        for view in range(n):
            origin = c2w[view][:3, 3]
            nearest = max(float(np.linalg.norm(np.clip(origin, lo, hi) - origin)), 1e-3)
            radius = int(np.ceil(half_cell / nearest * focal + margin))
            mask = _dilate(alpha[view] > 0.0, radius)
            xy = project(c2w[view], focal, width, height, centres)
            depth_ok = (centres - origin) @ (-c2w[view][:3, 2]) > 0.0
            inside = (
                depth_ok
                & (xy[:, 0] >= 0)
                & (xy[:, 0] < width)
                & (xy[:, 1] >= 0)
                & (xy[:, 1] < height)
            )
            px = np.clip(xy[:, 0].astype(np.int64), 0, width - 1)
            py = np.clip(xy[:, 1].astype(np.int64), 0, height - 1)
            keep &= ~inside | mask[py, px]
        self.hull = torch.from_numpy(keep).to(self.density.device)
        self.occupied &= self.hull
        return float(keep.mean())

    def cell_coords(self, index: torch.Tensor) -> torch.Tensor:
        """[N, 3] integer (i, j, k) of cell indices [N] (computed, not stored: a 128^3 grid's
        coordinates would be 50 MB on every field a scene loads)."""
        g = self.resolution
        return torch.stack([index % g, (index // g) % g, index // (g * g)], dim=-1)

    @property
    def cells(self) -> torch.Tensor:
        """[G^3, 3] the coordinates of every cell, in index order."""
        return self.cell_coords(torch.arange(self.resolution**3, device=self.density.device))

    @staticmethod
    def from_bits(
        packed: np.ndarray, resolution: int, device: torch.device | str = "cpu"
    ) -> OccupancyGrid:
        grid = OccupancyGrid(resolution, device)
        grid.occupied = unpack_bits(packed, resolution**3).to(device)
        grid.density = grid.occupied.float()
        return grid

    def bits(self) -> np.ndarray:
        return pack_bits(self.occupied)

    def lookup(self, unit: torch.Tensor) -> torch.Tensor:
        """[B] bool: whether the cells of unit points [B, 3] are occupied."""
        return self.occupied[cell_index(unit, self.resolution)]

    @torch.no_grad()
    def update(
        self,
        field: NerfField,
        threshold: float,
        decay: float = 0.95,
        fraction: float = 1.0,
        chunk: int = 1 << 16,
        generator: torch.Generator | None = None,
    ) -> None:
        """Refresh a random `fraction` of the cells in the hull plus every occupied one (all
        of the hull on the first updates) from the field's density at a random point in
        each."""
        device = self.density.device
        cells = self.resolution**3
        # cells outside the visual hull stay empty: never evaluated
        if self.updates < 16 or fraction >= 1.0:
            chosen = torch.nonzero(self.hull)[:, 0]
        else:
            pick = torch.rand(cells, generator=generator, device="cpu").to(device) < fraction
            chosen = torch.nonzero((pick & self.hull) | self.occupied)[:, 0]
        fresh = torch.empty(len(chosen), device=device)
        for start in range(0, len(chosen), chunk):
            idx = chosen[start : start + chunk]
            jitter = torch.rand((len(idx), 3), generator=generator, device="cpu").to(device)
            unit = (self.cell_coords(idx).float() + jitter) / self.resolution
            world = field.aabb[0] + unit * (field.aabb[1] - field.aabb[0])
            fresh[start : start + chunk] = field.density_at(world)
        self.density *= decay
        self.density[chosen] = torch.maximum(self.density[chosen], fresh)
        inside = self.density[self.hull]
        level = min(threshold, float(inside.mean())) if len(inside) else threshold
        self.occupied = (self.density > level) & self.hull
        self.updates += 1

    def occupied_share(self) -> float:
        return float(self.occupied.float().mean())


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """`mask` grown by a square of half-width `radius` (a max filter, as two passes of
    running sums)."""
    if radius <= 0:
        return mask
    out = mask.astype(np.int32)
    for axis in (0, 1):
        padded = np.concatenate(
            [
                np.zeros_like(out.take(range(radius), axis)),
                out,
                np.zeros_like(out.take(range(radius + 1), axis)),
            ],
            axis=axis,
        )
        total = np.cumsum(padded, axis=axis)
        size = out.shape[axis]
        upper = total.take(range(2 * radius, 2 * radius + size), axis)
        lower = np.concatenate(
            [np.zeros_like(total.take([0], axis)), total.take(range(size - 1), axis)], axis=axis
        )
        out = (upper - lower > 0).astype(np.int32)
    return out.astype(bool)
