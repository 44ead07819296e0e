"""Procedural patterns rasterised to tileable textures: noise, cellular patches, scratches,
dust, and normal maps from height.

Every pattern is a pure function of its parameters and seed, returns float32 values in
[0, 1] over a [R, R] grid whose row 0 is the top of the texture (v = 1), and wraps at the
edges, so textures tile and bilinear lookups across the seam are continuous.
"""

from __future__ import annotations

import numpy as np


def _grid(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Texel-centre coordinates in [0, 1): x along u, y along v (row 0 at v = 1)."""
    c = (np.arange(resolution, dtype=np.float64) + 0.5) / resolution
    x, y = np.meshgrid(c, c[::-1])
    return x, y


def _smooth(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


def value_noise(
    x: np.ndarray, y: np.ndarray, frequency: int, rng: np.random.Generator
) -> np.ndarray:
    """Value noise on a periodic `frequency` x `frequency` lattice, quintic-interpolated."""
    lattice = rng.random((frequency, frequency))
    fx, fy = x * frequency, y * frequency
    ix, iy = np.floor(fx).astype(np.int64), np.floor(fy).astype(np.int64)
    tx, ty = _smooth(fx - ix), _smooth(fy - iy)
    x0, x1 = ix % frequency, (ix + 1) % frequency
    y0, y1 = iy % frequency, (iy + 1) % frequency
    a = lattice[y0, x0] * (1 - tx) + lattice[y0, x1] * tx
    b = lattice[y1, x0] * (1 - tx) + lattice[y1, x1] * tx
    return a * (1 - ty) + b * ty


def _normalise(v: np.ndarray) -> np.ndarray:
    lo, hi = float(v.min()), float(v.max())
    return (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)


def fbm(
    resolution: int, frequency: int, octaves: int, gain: float, seed: int, warp: float = 0.0
) -> np.ndarray:
    """Fractal sum of value noise, stretched to [0, 1]; `warp` displaces the domain by
    low-frequency noise for organic shapes."""
    rng = np.random.default_rng(seed)
    x, y = _grid(resolution)
    if warp > 0:
        x = x + warp * (value_noise(x, y, max(2, frequency // 2), rng) - 0.5)
        y = y + warp * (value_noise(x, y, max(2, frequency // 2), rng) - 0.5)
    total = np.zeros_like(x)
    amplitude = 1.0
    for octave in range(octaves):
        if (frequency << octave) > 2 * resolution:
            break  # finer than the texels: adds only aliasing (and memory)
        total += amplitude * value_noise(x, y, frequency << octave, rng)
        amplitude *= gain
    return _normalise(total).astype(np.float32)


def cellular(
    resolution: int, cells: int, coverage: float, softness: float, seed: int, warp: float = 0.3
) -> np.ndarray:
    """Patches: each Voronoi cell of a jittered `cells` x `cells` grid is on with probability
    `coverage`; edges fade over `softness` (in cell units) and are warped by noise."""
    rng = np.random.default_rng(seed)
    x, y = _grid(resolution)
    if warp > 0:
        x = x + warp / cells * (value_noise(x, y, max(2, cells), rng) - 0.5) * 2
        y = y + warp / cells * (value_noise(x, y, max(2, cells), rng) - 0.5) * 2
    points = rng.random((cells, cells, 2))
    on = rng.random((cells, cells)) < coverage
    fx, fy = x * cells, y * cells
    ix, iy = np.floor(fx).astype(np.int64), np.floor(fy).astype(np.int64)
    best = np.full(x.shape, np.inf)
    second = np.full(x.shape, np.inf)
    owner = np.zeros(x.shape, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            cx, cy = ix + dx, iy + dy
            p = points[cy % cells, cx % cells]
            d = np.hypot(cx + p[..., 0] - fx, cy + p[..., 1] - fy)
            cell_on = on[cy % cells, cx % cells]
            closer = d < best
            second = np.where(closer, best, np.minimum(second, d))
            owner = np.where(closer, cell_on, owner)
            best = np.where(closer, d, best)
    # Distance to the cell border is about half the gap between the two nearest points.
    edge = np.clip(0.5 * (second - best) / max(softness, 1e-6), 0.0, 1.0)
    return np.where(owner, _smooth(edge), 0.0).astype(np.float32)


def scratch_points(resolution: int, count: int, length: float) -> float:
    """How many points `scratches` splats: its cost, for the loader's size check."""
    return count * 1.5 * length * resolution * 2


def scratches(
    resolution: int,
    count: int,
    length: float,
    width: float,
    direction: float | None,
    spread: float,
    seed: int,
) -> np.ndarray:
    """Thin straight scratches: `count` segments of mean `length` (uv units) and `width`
    (texels), oriented at `direction` degrees +- `spread` (random when direction is None);
    each has its own depth in [0.3, 1]."""
    rng = np.random.default_rng(seed)
    image = np.zeros((resolution, resolution), np.float64)
    radius = max(width, 0.5) * 0.5
    for _ in range(count):
        start = rng.random(2)
        angle = (
            rng.uniform(0, np.pi)
            if direction is None
            else np.radians(direction + rng.uniform(-spread, spread))
        )
        seg = length * rng.uniform(0.5, 1.5)
        depth = rng.uniform(0.3, 1.0)
        steps = max(2, int(seg * resolution * 2))
        t = np.linspace(0.0, seg, steps)
        px = (start[0] + t * np.cos(angle)) * resolution
        py = (start[1] + t * np.sin(angle)) * resolution
        # Splat each point into the texels within `radius`, with a linear falloff.
        reach = int(np.ceil(radius + 1))
        for oy in range(-reach, reach + 1):
            for ox in range(-reach, reach + 1):
                cx = np.floor(px).astype(np.int64) + ox
                cy = np.floor(py).astype(np.int64) + oy
                d = np.hypot(cx + 0.5 - px, cy + 0.5 - py)
                w = np.clip(1.0 - d / (radius + 0.5), 0.0, 1.0) * depth
                rows = (resolution - 1 - cy) % resolution
                cols = cx % resolution
                np.maximum.at(image, (rows, cols), w)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def dust(resolution: int, frequency: int, coverage: float, seed: int) -> np.ndarray:
    """Dust: soft drifts where low-frequency noise exceeds its (1 - coverage) quantile,
    plus fine speckles scattered with the same density."""
    drifts = fbm(resolution, frequency, 4, 0.55, seed).astype(np.float64)
    level = np.quantile(drifts, 1.0 - coverage) if coverage > 0 else 2.0
    mask = np.clip((drifts - level) / 0.15 + 0.5, 0.0, 1.0) if coverage > 0 else drifts * 0
    rng = np.random.default_rng(seed + 1)
    speckles = (rng.random((resolution, resolution)) < 0.05 * coverage) * rng.uniform(
        0.3, 1.0, (resolution, resolution)
    )
    return np.clip(np.maximum(mask, speckles), 0.0, 1.0).astype(np.float32)


def normal_map_from_height(height: np.ndarray, depth: float) -> np.ndarray:
    """Unit tangent-space normals [R, R, 3] of the surface `depth * height` (uv units):
    x along +u, y along +v, z out of the surface. Central differences, wrapping."""
    h = np.asarray(height, np.float64)
    rows, cols = h.shape
    dh_du = (np.roll(h, -1, axis=1) - np.roll(h, 1, axis=1)) * 0.5 * cols
    # Row index grows downwards, i.e. towards smaller v.
    dh_dv = (np.roll(h, 1, axis=0) - np.roll(h, -1, axis=0)) * 0.5 * rows
    n = np.stack([-depth * dh_du, -depth * dh_dv, np.ones_like(h)], axis=-1)
    return (n / np.linalg.norm(n, axis=-1, keepdims=True)).astype(np.float32)
