"""Error measures shared by training and the report.

The training loss is L1 between log(f*cos + LOG_OFFSET) and the same of the target: a
relative error for everything brighter than the offset, so a dark diffuse base counts as
much as a bright highlight (with log(1 + x) the base, mostly below 0.1, is nearly free
to trade away for the highlight), and a floor below it, so near-black grazing values and
the reference's noise there do not dominate.
"""

from __future__ import annotations

import math

import numpy as np
import torch

LOG_OFFSET = 0.01


def log_l1(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (torch.log(estimate + LOG_OFFSET) - torch.log(target + LOG_OFFSET)).abs().mean()


def log_l1_np(estimate: np.ndarray, target: np.ndarray) -> float:
    e = np.asarray(estimate, np.float64)
    t = np.asarray(target, np.float64)
    return float(np.mean(np.abs(np.log(e + LOG_OFFSET) - np.log(t + LOG_OFFSET))))


def psnr(estimate: np.ndarray, reference: np.ndarray, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB; peak 1 (a white Lambertian's f*cos is <= 1/pi)."""
    mse = float(np.mean((np.asarray(estimate, np.float64) - reference) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def tonemap(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + x)


def ssim(estimate: np.ndarray, reference: np.ndarray, peak: float = 1.0) -> float:
    """Mean structural similarity (Wang et al. 2004) of two [H, W, C] images: an 11x11
    Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, computed per channel over the
    window positions that lie inside the image and averaged (the usual NeRF protocol)."""
    x = torch.as_tensor(np.asarray(estimate, np.float64)).permute(2, 0, 1)[:, None]
    y = torch.as_tensor(np.asarray(reference, np.float64)).permute(2, 0, 1)[:, None]
    size = min(11, x.shape[-1], x.shape[-2])
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(offsets**2) / (2 * 1.5**2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :])[None, None]

    def blur(z: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(z, window)

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    value = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(value.mean())
