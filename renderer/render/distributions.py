"""Piecewise-constant sampling tables, built on the host and searched in Slang."""

from __future__ import annotations

import numpy as np


def cdf_rows(weights: np.ndarray) -> np.ndarray:
    """CDF per row [..., n + 1] of non-negative weights [..., n]: 0 first, exactly 1 last.

    A row of zeros gets a uniform CDF, so sampling it never divides by zero.
    """
    weights = np.asarray(weights, np.float64)
    totals = weights.sum(axis=-1, keepdims=True)
    weights = np.where(totals > 0, weights, 1.0)
    cdf = np.concatenate([np.zeros((*weights.shape[:-1], 1)), np.cumsum(weights, axis=-1)], axis=-1)
    cdf /= cdf[..., -1:]
    cdf[..., -1] = 1.0
    return cdf


def cdf_2d(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Marginal CDF over rows [H + 1] and conditional CDFs per row [H, W + 1]."""
    weights = np.asarray(weights, np.float64)
    return cdf_rows(weights.sum(axis=1)), cdf_rows(weights)
