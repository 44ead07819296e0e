"""How much light an emission texture gives each emissive triangle, for choosing emitters
by power in next-event estimation.

A triangle's power uses the texture's mean over the texels a lookup inside the triangle can
read: its uv bounding box, widened by the bilinear footprint, wrapping as the texture does
(shaders/materials/texture.slang). That mean is zero only where the emission is zero on the
whole triangle, so light sampling reaches every light BSDF sampling can. Summed-area tables
give every triangle's window sum at once.
"""

from __future__ import annotations

import numpy as np

from ..materials.texture import Texture

# Above this many texels an emission texture's power per triangle is its global mean (the
# summed-area tables of the windowed means would take 12 bytes per texel).
MAX_WINDOWED_TEXELS = 1 << 22


def _texel_windows(st: np.ndarray, size: int, flip: bool) -> tuple[np.ndarray, np.ndarray]:
    """[T] first texel and [T] texel count along one image axis that a bilinear lookup
    (shaders/materials/texture.slang) can read for coordinates in [min, max] of `st`
    ([T, 3]), one texel wider on each side for rounding; at most one period, first texel
    in [0, size)."""
    lo, hi = st.min(axis=1), st.max(axis=1)
    if flip:  # rows: y = (1 - v) size - 0.5
        lo, hi = 1.0 - hi, 1.0 - lo
    with np.errstate(invalid="ignore", over="ignore"):
        first = np.floor(lo * size - 0.5) - 1.0
        end = np.floor(hi * size - 0.5) + 3.0
        count = end - first
        whole = ~np.isfinite(count) | (count >= size)
    first = np.where(whole, 0.0, np.mod(np.where(whole, 0.0, first), size))
    return first.astype(np.int64), np.where(whole, size, count).astype(np.int64)


def _window_sums(table: np.ndarray, rows: tuple, cols: tuple) -> np.ndarray:
    """Sums over texel windows of a periodic image from its summed-area table
    ([H + 1, W + 1]): rows/cols are (first in [0, n), count <= n) per window."""
    h, w = table.shape[0] - 1, table.shape[1] - 1

    def prefix(r: np.ndarray, c: np.ndarray) -> np.ndarray:  # r < 2h, c < 2w
        qr, rr, qc, rc = r // h, r % h, c // w, c % w
        return qr * qc * table[h, w] + qr * table[h, rc] + qc * table[rr, w] + table[rr, rc]

    r0, r1 = rows[0], rows[0] + rows[1]
    c0, c1 = cols[0], cols[0] + cols[1]
    return prefix(r1, c1) - prefix(r0, c1) - prefix(r1, c0) + prefix(r0, c0)


def emission_texture_means(texture: Texture, weights: np.ndarray, uvs: np.ndarray) -> np.ndarray:
    """[T] mean of texel . `weights` ([3], >= 0) over what a lookup of `texture` inside each
    triangle (uvs [T, 3, 2]) can read: zero exactly where the texture is zero there."""
    weights = np.asarray(weights, np.float64)
    if texture.kind != "image" or texture.image is None:
        values = [texture.value] + ([texture.value2] if texture.kind == "checker" else [])
        mean = np.mean([np.maximum(v, 0.0) @ weights for v in values])
        return np.full(len(uvs), mean)
    image = np.asarray(texture.image, np.float64)
    image = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=-1)
    values = np.maximum(image[..., :3], 0.0) @ weights  # [H, W]
    h, w = values.shape
    if h * w > MAX_WINDOWED_TEXELS or len(uvs) == 0:
        return np.full(len(uvs), values.mean())
    st = uvs.astype(np.float64) * np.asarray(texture.uv_scale, np.float64)
    rows = _texel_windows(st[..., 1], h, flip=True)
    cols = _texel_windows(st[..., 0], w, flip=False)
    sums = np.zeros((h + 1, w + 1))
    sums[1:, 1:] = values.cumsum(0).cumsum(1)
    lit = np.zeros((h + 1, w + 1), np.int64)
    lit[1:, 1:] = (values > 0).cumsum(0).cumsum(1)
    mean = np.maximum(_window_sums(sums, rows, cols), 0.0) / (rows[1] * cols[1])
    # The float sums may cancel to zero over a lit window; the integer counts cannot.
    return np.where(_window_sums(lit, rows, cols) > 0, np.maximum(mean, 1e-9 * values.max()), 0.0)
