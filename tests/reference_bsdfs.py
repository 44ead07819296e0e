"""Reference BSDF building blocks in float64 numpy, written from the literature and not
from shaders/bsdfs/, for tests/test_bsdf_reference.py. Each formula is a different
(textbook) form of what the shader computes, so a shared slip is unlikely.

Directions are unit vectors [N, 3] in the local frame (normal +Z), pointing away from the
surface, as in shaders/bsdfs/bsdf.slang.
"""

from __future__ import annotations

import numpy as np


def fresnel_dielectric(cos_i: np.ndarray, eta: np.ndarray | float) -> np.ndarray:
    """Unpolarised reflectance of a dielectric interface from the angle forms (Hecht,
    Optics, eq. 4.42-4.43): r_s = -sin(ti - tt) / sin(ti + tt), r_p = tan(ti - tt) /
    tan(ti + tt). `eta` = index below / index above; cos_i < 0 means light from below."""
    cos_i, eta = np.broadcast_arrays(np.asarray(cos_i, np.float64), np.asarray(eta, np.float64))
    eta = np.where(cos_i < 0, 1.0 / eta, eta)
    theta_i = np.arccos(np.clip(np.abs(cos_i), 0.0, 1.0))
    sin_t = np.sin(theta_i) / eta
    tir = sin_t >= 1.0
    theta_t = np.arcsin(np.clip(sin_t, 0.0, 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        r_s = -np.sin(theta_i - theta_t) / np.sin(theta_i + theta_t)
        r_p = np.tan(theta_i - theta_t) / np.tan(theta_i + theta_t)
        reflectance = 0.5 * (r_s**2 + r_p**2)
    normal = np.abs(theta_i) < 1e-7  # both forms are 0 / 0 there
    return np.where(tir, 1.0, np.where(normal, fresnel_normal(eta, 0.0), reflectance))


def fresnel_normal(eta: np.ndarray | float, k: np.ndarray | float) -> np.ndarray:
    """Reflectance at normal incidence of the index eta + i k: |(n - 1) / (n + 1)|^2."""
    eta, k = np.asarray(eta, np.float64), np.asarray(k, np.float64)
    return ((eta - 1) ** 2 + k**2) / ((eta + 1) ** 2 + k**2)


def fresnel_conductor_sp(
    cos_i: np.ndarray, eta: np.ndarray, k: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(R_s, R_p) of the complex index n = eta + i k, from complex amplitudes (Born & Wolf
    sec. 14.2): with w = n cos t = sqrt(n^2 - sin^2 i), r_s = (cos i - w) / (cos i + w) and
    r_p = (n^2 cos i - w) / (n^2 cos i + w)."""
    c = np.abs(np.asarray(cos_i, np.float64))
    n = np.asarray(eta, np.float64) + 1j * np.asarray(k, np.float64)
    w = np.sqrt(n * n - (1.0 - c * c) + 0j)
    r_s = (c - w) / (c + w)
    r_p = (n * n * c - w) / (n * n * c + w)
    return np.abs(r_s) ** 2, np.abs(r_p) ** 2


def fresnel_conductor(cos_i: np.ndarray, eta: np.ndarray, k: np.ndarray) -> np.ndarray:
    r_s, r_p = fresnel_conductor_sp(cos_i, eta, k)
    return 0.5 * (r_s + r_p)


def artist_to_complex_ior(r: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gulbrandsen, "Artist Friendly Metallic Fresnel", JCGT 3(4), 2014, eq. 8-10:
    n = g n_min + (1 - g) n_max with n_min = (1 - r) / (1 + r), n_max = (1 + sqrt r) /
    (1 - sqrt r), and k from inverting the normal-incidence reflectance for r."""
    r, g = np.asarray(r, np.float64), np.asarray(g, np.float64)
    n = g * (1 - r) / (1 + r) + (1 - g) * (1 + np.sqrt(r)) / (1 - np.sqrt(r))
    k = np.sqrt(np.maximum((r * (n + 1) ** 2 - (n - 1) ** 2) / (1 - r), 0.0))
    return n, k


def _tan2_and_phi(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w = np.asarray(w, np.float64)
    cos_t = w[:, 2]
    with np.errstate(divide="ignore"):
        tan2 = (w[:, 0] ** 2 + w[:, 1] ** 2) / cos_t**2
    phi = np.arctan2(w[:, 1], w[:, 0])
    return cos_t, tan2, phi


def ggx_d(m: np.ndarray, alpha_x: float, alpha_y: float) -> np.ndarray:
    """Anisotropic GGX in the polar form of Heitz, JCGT 3(2) 2014, eq. 85: D(m) =
    1 / (pi ax ay cos^4 t (1 + tan^2 t (cos^2 p / ax^2 + sin^2 p / ay^2))^2), zero below."""
    cos_t, tan2, phi = _tan2_and_phi(m)
    s = np.cos(phi) ** 2 / alpha_x**2 + np.sin(phi) ** 2 / alpha_y**2
    with np.errstate(divide="ignore", invalid="ignore"):
        d = 1.0 / (np.pi * alpha_x * alpha_y * cos_t**4 * (1 + tan2 * s) ** 2)
    return np.where(cos_t > 0, d, 0.0)


def smith_lambda(w: np.ndarray, alpha_x: float, alpha_y: float) -> np.ndarray:
    """Heitz 2014 eq. 86: Lambda = (-1 + sqrt(1 + alpha_o^2 tan^2 t)) / 2, with the
    projected roughness alpha_o^2 = cos^2 p ax^2 + sin^2 p ay^2."""
    _, tan2, phi = _tan2_and_phi(w)
    alpha2 = np.cos(phi) ** 2 * alpha_x**2 + np.sin(phi) ** 2 * alpha_y**2
    return 0.5 * (-1 + np.sqrt(1 + alpha2 * tan2))


def conductor_f_cos(
    wo: np.ndarray, wi: np.ndarray, alpha: tuple[float, float], eta: np.ndarray, k: np.ndarray
) -> np.ndarray:
    """[N, 3] f * cos(theta_i) of the GGX conductor (Walter et al. 2007 eq. 20, with the
    height-correlated G2 = 1 / (1 + Lambda(wo) + Lambda(wi)) of Heitz 2014 eq. 99)."""
    h = wo + wi
    h /= np.linalg.norm(h, axis=1, keepdims=True)
    g2 = 1.0 / (1 + smith_lambda(wo, *alpha) + smith_lambda(wi, *alpha))
    f = ggx_d(h, *alpha) * g2 / (4 * wo[:, 2] * wi[:, 2])
    fresnel = fresnel_conductor(np.sum(wo * h, axis=1)[:, None], eta[None, :], k[None, :])
    ok = (wo[:, 2] > 0) & (wi[:, 2] > 0)
    return np.where(ok[:, None], fresnel * (f * wi[:, 2])[:, None], 0.0)


def dielectric_f_cos(
    wo: np.ndarray, wi: np.ndarray, alpha: tuple[float, float], eta: float, radiance: bool
) -> np.ndarray:
    """[N] f * |cos theta_i| of the rough dielectric of Walter et al. 2007 (eq. 20, 21, 16)
    with the height-correlated G2 = 1 / (1 + Lambda(wo) + Lambda(wi)). Written with the
    indices n_o (side of wo) and n_i (side of wi); eq. 21 is the radiance form, the
    non-radiance (importance, symmetric-in-layers) form is it times (n_i / n_o)^2."""
    n_above, n_below = 1.0, eta
    n_o = np.where(wo[:, 2] > 0, n_above, n_below)
    n_i = np.where(wi[:, 2] > 0, n_above, n_below)
    reflect = wo[:, 2] * wi[:, 2] > 0
    h = np.where(reflect[:, None], wo + wi, -(n_o[:, None] * wo + n_i[:, None] * wi))
    h /= np.linalg.norm(h, axis=1, keepdims=True)
    h *= np.sign(h[:, 2:3])
    o_h, i_h = np.sum(wo * h, axis=1), np.sum(wi * h, axis=1)
    # The Fresnel term of the side wo lies on, seen along h.
    fresnel = fresnel_dielectric(o_h, eta)
    g2 = 1.0 / (1 + smith_lambda(wo, *alpha) + smith_lambda(wi, *alpha))
    d = ggx_d(h, *alpha)
    cos_o, cos_i = np.abs(wo[:, 2]), np.abs(wi[:, 2])
    f_r = fresnel * d * g2 / (4 * cos_o * cos_i)
    f_t = (
        np.abs(i_h * o_h)
        / (cos_i * cos_o)
        * n_o**2
        * (1 - fresnel)
        * g2
        * d
        / (n_i * i_h + n_o * o_h) ** 2
    )
    if not radiance:
        f_t = f_t * (n_i / n_o) ** 2
    # Microfacets seen from behind by either direction carry no light.
    visible = (o_h * wo[:, 2] > 0) & (i_h * wi[:, 2] > 0)
    return np.where(visible, np.where(reflect, f_r, f_t) * cos_i, 0.0)


def slope_quadrature(
    alpha_x: float, alpha_y: float, radial: int = 160, angular: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """Nodes m [N, 3] on the upper hemisphere and weights [N] for integrals over solid
    angle, dense where a GGX lobe of these alphas is: in stretched slope space m ~
    (ax r cos p, ay r sin p, 1), with r = tan(pi u / 2), Gauss-Legendre in u and the
    (periodic, hence spectrally accurate) midpoint rule in p. d omega = dx dy cos^3 t."""
    u, wu = np.polynomial.legendre.leggauss(radial)
    u, wu = 0.5 * (u + 1), 0.5 * wu
    r = np.tan(0.5 * np.pi * u)
    dr = 0.5 * np.pi / np.cos(0.5 * np.pi * u) ** 2 * wu
    p = (np.arange(angular) + 0.5) * (2 * np.pi / angular)
    rr, pp = np.meshgrid(r, p, indexing="ij")
    x, y = alpha_x * rr * np.cos(pp), alpha_y * rr * np.sin(pp)
    norm = np.sqrt(1 + x**2 + y**2)
    m = np.stack([x / norm, y / norm, 1 / norm], axis=-1).reshape(-1, 3)
    weight = (alpha_x * alpha_y * rr * dr[:, None] * (2 * np.pi / angular)) / norm**3
    return m, weight.reshape(-1)


def reflect(w: np.ndarray, m: np.ndarray) -> np.ndarray:
    return 2 * np.sum(w * m, axis=1, keepdims=True) * m - w


def conductor_albedo(
    wo: np.ndarray, alpha: tuple[float, float], eta: np.ndarray, k: np.ndarray
) -> np.ndarray:
    """[3] directional albedo int f cos d wi of the GGX conductor, integrated over the
    half vector (d wi = 4 |wo.h| d h) on the slope quadrature."""
    h, weight = slope_quadrature(*alpha, radial=200, angular=256)
    wos = np.broadcast_to(wo, h.shape)
    wi = reflect(wos, h)
    f_cos = conductor_f_cos(wos, wi, alpha, eta, k)
    jacobian = 4 * np.abs(np.sum(wos * h, axis=1))
    return np.sum(f_cos * (jacobian * weight)[:, None], axis=0)
