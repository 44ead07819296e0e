"""The latent texture pyramid and its bilinear lookup.

All levels live in one flat [texels, C] array (finest level first, each level row-major
with row 0 at the top, v = 1), so a batch mixing levels is one gather. The lookup is the
twin of image_bilinear in shaders/materials/texture.slang: texel centres at half-integer
coordinates, wrapping at the edges.
"""

from __future__ import annotations

import torch
from torch import nn

from .architecture import Architecture


class LevelIndex:
    """Where each level starts in the flat array, and its size."""

    def __init__(self, levels: list[tuple[int, int]], device: torch.device | str = "cpu") -> None:
        self.sizes = levels
        offsets = [0]
        for h, w in levels:
            offsets.append(offsets[-1] + h * w)
        self.texels = offsets[-1]
        self.offsets = torch.tensor(offsets[:-1], dtype=torch.long, device=device)
        self.heights = torch.tensor([h for h, _ in levels], dtype=torch.long, device=device)
        self.widths = torch.tensor([w for _, w in levels], dtype=torch.long, device=device)

    def taps(self, uv: torch.Tensor, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uv [N, 2], level [N] -> flat texel indices [N, 4] and bilinear weights [N, 4]."""
        w = self.widths[level]
        h = self.heights[level]
        x = uv[:, 0] * w - 0.5
        y = (1.0 - uv[:, 1]) * h - 0.5
        x0, y0 = torch.floor(x), torch.floor(y)
        tx, ty = x - x0, y - y0
        ix, iy = x0.long(), y0.long()
        ix1, iy1 = torch.remainder(ix + 1, w), torch.remainder(iy + 1, h)
        ix, iy = torch.remainder(ix, w), torch.remainder(iy, h)
        base = self.offsets[level]
        index = torch.stack(
            [base + iy * w + ix, base + iy * w + ix1, base + iy1 * w + ix, base + iy1 * w + ix1],
            -1,
        )
        weight = torch.stack([(1 - tx) * (1 - ty), tx * (1 - ty), (1 - tx) * ty, tx * ty], -1)
        return index, weight


def bilinear(flat: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Blend rows of `flat` [T, C] at index/weight [N, 4] -> [N, C]."""
    return (flat[index] * weight[..., None]).sum(1)


class LatentPyramid(nn.Module):
    """Trainable latents of every level, flat [texels, C] (float32 while training; files
    store fp16)."""

    def __init__(self, arch: Architecture, flat: torch.Tensor | None = None) -> None:
        super().__init__()
        if flat is None:
            flat = torch.zeros(LevelIndex(arch.levels).texels, arch.latent_channels)
        self.index = LevelIndex(arch.levels, flat.device)
        self.latents = nn.Parameter(flat.float().clone())

    def forward(self, uv: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        index, weight = self.index.taps(uv, level)
        return bilinear(self.latents, index, weight)

    def level_arrays(self) -> list[torch.Tensor]:
        """[h, w, C] per level."""
        out = []
        for (h, w), start in zip(self.index.sizes, self.index.offsets.tolist(), strict=True):
            out.append(self.latents.detach()[start : start + h * w].reshape(h, w, -1))
        return out
