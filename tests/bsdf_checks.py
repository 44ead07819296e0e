"""Statistical checks of a material's sampler against its pdf, shared by the BSDF tests.

`chi_square` bins sampled directions over the whole sphere (in theta and phi), integrates
the pdf over every bin with a midpoint rule, pools bins expecting fewer than 5 samples,
and returns scipy's p-value of the chi-square statistic. Samples that failed or were
delta events form one more bin against the pdf's missing mass. Expected counts are N
times the integrated pdf, never rescaled to the observed total: a pdf too large or too
small by a constant factor, or with mass where sample() never goes (below an opaque
surface), fails.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from renderer.materials import MaterialQueries


def direction(theta_deg: float, phi_deg: float = 0.0) -> np.ndarray:
    t, p = np.radians(theta_deg), np.radians(phi_deg)
    return np.array([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)])


def repeat(v: np.ndarray, n: int) -> np.ndarray:
    return np.tile(np.asarray(v, np.float64)[None, :], (n, 1))


def _bin_directions(
    theta_edges: np.ndarray, phi_edges: np.ndarray, sub: int
) -> tuple[np.ndarray, np.ndarray]:
    """Midpoints [Bt, Bp, sub*sub, 3] of a sub-grid in every bin and their solid angles
    [Bt, sub] (sin theta dtheta dphi; the same for every phi)."""
    dt = (theta_edges[1] - theta_edges[0]) / sub
    dp = (phi_edges[1] - phi_edges[0]) / sub
    t = theta_edges[:-1, None] + (np.arange(sub) + 0.5)[None, :] * dt  # [Bt, sub]
    p = phi_edges[:-1, None] + (np.arange(sub) + 0.5)[None, :] * dp  # [Bp, sub]
    tt = np.broadcast_to(t[:, None, :, None], (len(t), len(p), sub, sub))
    pp = np.broadcast_to(p[None, :, None, :], (len(t), len(p), sub, sub))
    s = np.sin(tt)
    dirs = np.stack([s * np.cos(pp), s * np.sin(pp), np.cos(tt)], axis=-1)
    area = np.broadcast_to((np.sin(t) * dt * dp)[:, None, :, None], tt.shape)
    return dirs.reshape(len(t), len(p), sub * sub, 3), area.reshape(len(t), len(p), sub * sub)


def chi_square(
    queries: MaterialQueries,
    wo: np.ndarray,
    uv: tuple[float, float] = (0.5, 0.5),
    samples: int = 200_000,
    theta_bins: int = 60,
    phi_bins: int = 40,
    sub: int = 16,
    seed: int = 1,
) -> float:
    uvs = repeat(np.asarray(uv), samples)
    wi, _, pdf, delta = queries.sample(uvs, repeat(wo, samples), seed=seed)
    ok = (pdf > 0) & ~delta
    theta_edges = np.linspace(0.0, np.pi, theta_bins + 1)
    phi_edges = np.linspace(-np.pi, np.pi, phi_bins + 1)
    theta = np.arccos(np.clip(wi[ok, 2], -1.0, 1.0))
    observed, _, _ = np.histogram2d(
        theta, np.arctan2(wi[ok, 1], wi[ok, 0]), bins=[theta_edges, phi_edges]
    )
    dirs, area = _bin_directions(theta_edges, phi_edges, sub)
    flat = dirs.reshape(-1, 3)
    density = queries.pdf(repeat(np.asarray(uv), len(flat)), flat, repeat(wo, len(flat)))
    expected = (density.reshape(dirs.shape[:3]) * area).sum(axis=2) * samples
    obs = observed.ravel()
    exp = expected.ravel()
    missing_obs = samples - obs.sum()
    missing_exp = max(samples - exp.sum(), 0.0)
    # Pool sparse bins (Mitsuba's rule) so the chi-square approximation holds.
    order = np.argsort(exp)
    pooled_obs, pooled_exp = [], []
    acc_o = acc_e = 0.0
    for i in order:
        if exp[i] < 5:
            acc_o += obs[i]
            acc_e += exp[i]
        else:
            pooled_obs.append(obs[i])
            pooled_exp.append(exp[i])
    acc_o += missing_obs
    acc_e += missing_exp
    if acc_e >= 5:
        pooled_obs.append(acc_o)
        pooled_exp.append(acc_e)
    elif acc_o > 25:
        return 0.0  # samples landed where the pdf says almost nothing can
    o, e = np.array(pooled_obs), np.array(pooled_exp)
    # scipy insists the two totals agree; they differ only by the pooled missing-mass bin
    # clamp (a pdf whose mass exceeds 1, which the statistic below then punishes)
    statistic = float((((o - e) ** 2) / np.maximum(e, 1e-9)).sum())
    return float(stats.chi2.sf(statistic, len(o) - 1))
