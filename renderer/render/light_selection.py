"""How often next-event estimation samples the environment rather than an emissive triangle.

The kernel picks the environment with probability `environment_probability` and an
emissive triangle (by power) otherwise; sampling (`Scene.sample_light`) and both MIS pdfs
(`Scene.environment_pdf`, `Lights.emitter_pdf`) read that one number, so any value in
(0, 1) is unbiased and only the noise depends on it.

Why irradiance where the camera looks: at a receiver whose two light estimates are good
(E_env and E_emit each nearly noise-free), the one-sample choice adds variance
E_env^2 / p + E_emit^2 / (1 - p) - (E_env + E_emit)^2, which is zero at
p = E_env / (E_env + E_emit): pick each light type in proportion to the light it delivers
where the image is made. A global power estimate cannot see that: pbrt's power of an
infinite light grows with the scene's bounding sphere, so a large ground plane made the
environment "brighter" than a lamp that lights everything the camera sees (p = 0.99 on a
100 m ground under a dim sky, where the variance is lowest near 0.5; 39x less variance
per sample with this estimate, tools/light_selection_study.py).

So the probability is measured at the receivers that matter: the first surfaces the
camera sees. A 16 x 12 grid of camera rays finds them; at each, 32 environment directions
(drawn by texel luminance x solid angle) and 32 emitter points (drawn by emitter power)
with shadow rays estimate the irradiance each light type delivers there, occlusion
included (so a closed room's walls do not count the sky behind them). Then

    p = DEFENSIVE / 2 + (1 - DEFENSIVE) * E_env / (E_env + E_emitters)

with E the luminance of the mean irradiance over the receivers. The defensive share keeps
p in [0.05, 0.95] when both light types exist: first-hit receivers of the scene's camera
cannot see what lights later bounces or another view (the viewer's camera moves without
a reload), and NEE-only renders need every light reachable; it costs at most 1 / (1 - 0.1)
in variance where the estimate was right. If no receiver gets light from either type, p is
an even split. It is deterministic (fixed sample pattern and seed) and costs ~12 000 rays.

Limits: receivers count as diffuse (cosine only) and BSDF sampling's share under MIS is
ignored, so a glossy highlight of a small bright source is underrated (the default
scene's brass sphere under the sun: 7% more variance than the old 0.92, whose estimate
happened to suit it). The scene's camera at upload time decides; a moved camera keeps
the old value (still unbiased).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..accel.primitives import SphereSet
from ..accel.queries import TriangleQueries
from ..image_io import LUMINANCE
from ..scene.environment import texel_directions
from ..scene.types import Camera, Environment

RECEIVER_GRID = (16, 12)  # camera rays across the image, (x, y)
SAMPLES_PER_RECEIVER = 32  # environment directions, and as many emitter points
DEFENSIVE = 0.1  # share of the even split mixed in: p stays in [0.05, 0.95]
SEED = 0x11647


@dataclass
class EmitterLights:
    """Emissive triangles as light sampling sees them (host copy)."""

    vertices: np.ndarray  # [E, 3, 3] world space
    radiance: np.ndarray  # [E] luminance of the emission (texture mean where textured)
    pmf: np.ndarray  # [E] probability of choosing each, by power


@dataclass
class Receivers:
    points: np.ndarray  # [R, 3] first hits of camera rays
    normals: np.ndarray  # [R, 3] geometric normals turned towards the camera


def camera_receivers(
    camera: Camera,
    queries: TriangleQueries,
    triangles: np.ndarray,
    grid: tuple[int, int] = RECEIVER_GRID,
    spheres: SphereSet | None = None,
) -> Receivers:
    """First hits of a grid of camera rays through pixel-block centres (same rays as
    shaders/scene/camera.slang); `triangles` [T, 3, 3] and `spheres` in the order `queries`
    was given."""
    width, height = camera.resolution
    forward, right, up = camera.basis()
    tan_half = np.tan(np.radians(camera.fov) / 2)
    nx, ny = grid
    x, y = np.meshgrid((np.arange(nx) + 0.5) / nx, (np.arange(ny) + 0.5) / ny)
    sx = (2 * x.ravel() - 1) * (width / height) * tan_half
    sy = (1 - 2 * y.ravel()) * tan_half
    d = forward[None] + sx[:, None] * right[None] + sy[:, None] * up[None]
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    origins = np.repeat(np.asarray(camera.position, np.float64)[None], len(d), axis=0)
    hits = queries.closest_hit(origins, d)
    ok = hits.hit
    points = origins[ok] + hits.t[ok, None].astype(np.float64) * d[ok]
    primitive = hits.primitive[ok]
    on_sphere = primitive >= len(triangles)
    n = np.zeros((len(primitive), 3))
    tri = triangles[primitive[~on_sphere]].astype(np.float64)
    n[~on_sphere] = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    if on_sphere.any():
        assert spheres is not None
        ball = primitive[on_sphere] - len(triangles)
        n[on_sphere] = points[on_sphere] - spheres.centers[ball].astype(np.float64)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-30)
    n *= -np.sign((n * d[ok]).sum(axis=1, keepdims=True) + 1e-30)
    return Receivers(points, n)


def environment_samples(
    env: Environment,
    receivers: Receivers,
    queries: TriangleQueries,
    epsilon: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """[R, K] one-sample estimates of the luminance irradiance the environment delivers to
    each receiver, occlusion included: texels drawn by luminance x solid angle, rays
    through texel centres."""
    radiance = np.asarray(env.radiance, np.float64) @ LUMINANCE * env.scale  # [H, W]
    h, w = radiance.shape
    solid_angle = (2 * np.pi / w) * (np.pi / h) * np.sin(np.pi * (np.arange(h) + 0.5) / h)
    power = np.maximum(radiance, 0) * solid_angle[:, None]  # [H, W], L dw per texel
    total = power.sum()
    count = len(receivers.points)
    if total <= 0 or count == 0:
        return np.zeros((count, SAMPLES_PER_RECEIVER))
    k = SAMPLES_PER_RECEIVER
    texel = rng.choice(h * w, size=(count, k), p=(power / total).ravel())
    d = texel_directions(w, h).reshape(-1, 3)[texel]  # map frame [R, K, 3]
    angle = np.radians(env.rotation)
    c, s = np.cos(angle), np.sin(angle)
    d = np.stack([c * d[..., 0] + s * d[..., 2], d[..., 1], -s * d[..., 0] + c * d[..., 2]], -1)
    cos = (d * receivers.normals[:, None]).sum(-1)
    lit = cos > 0
    origins = receivers.points[:, None] + epsilon * receivers.normals[:, None]
    origins = np.broadcast_to(origins, d.shape)
    visible = np.zeros_like(lit)
    visible[lit] = ~queries.occluded(origins[lit], d[lit])
    # L dw cos / P(texel) with P = L dw / total: each sample is total * cos.
    return total * np.where(visible, cos, 0.0)


def emitter_samples(
    emitters: EmitterLights,
    receivers: Receivers,
    queries: TriangleQueries,
    epsilon: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """[R, K] one-sample estimates of the luminance irradiance the emissive triangles
    deliver to each receiver, occlusion included: emitters by power, points uniform on
    them (front faces emit), as the kernel samples them."""
    count = len(receivers.points)
    if len(emitters.pmf) == 0 or count == 0:
        return np.zeros((count, SAMPLES_PER_RECEIVER))
    k = SAMPLES_PER_RECEIVER
    pick = rng.choice(len(emitters.pmf), size=(count, k), p=emitters.pmf / emitters.pmf.sum())
    tri = emitters.vertices[pick].astype(np.float64)  # [R, K, 3, 3]
    u = rng.random((count, k, 2))
    su = np.sqrt(u[..., 0])
    b1, b2 = (1 - u[..., 1]) * su, u[..., 1] * su
    q = (
        (1 - b1 - b2)[..., None] * tri[..., 0, :]
        + b1[..., None] * tri[..., 1, :]
        + b2[..., None] * tri[..., 2, :]
    )
    cross = np.cross(tri[..., 1, :] - tri[..., 0, :], tri[..., 2, :] - tri[..., 0, :])
    area = 0.5 * np.linalg.norm(cross, axis=-1)
    n_light = cross / np.maximum(2 * area[..., None], 1e-30)
    to_light = q - receivers.points[:, None]
    dist = np.linalg.norm(to_light, axis=-1)
    d = to_light / np.maximum(dist[..., None], 1e-30)
    cos_r = (d * receivers.normals[:, None]).sum(-1)
    cos_l = -(d * n_light).sum(-1)
    lit = (cos_r > 0) & (cos_l > 0)
    # Both ends pushed off their surfaces, as the path tracer's shadow rays (Scene.shadow_ray).
    origins = receivers.points[:, None] + epsilon * receivers.normals[:, None]
    to = q + epsilon * n_light - origins
    length = np.linalg.norm(to, axis=-1)
    shadow_d = to / np.maximum(length[..., None], 1e-30)
    origins = np.broadcast_to(origins, d.shape)
    visible = np.zeros_like(lit)
    visible[lit] = ~queries.occluded(origins[lit], shadow_d[lit], length[lit] * (1 - 1e-4))
    with np.errstate(divide="ignore", invalid="ignore"):
        value = emitters.radiance[pick] * cos_r * cos_l * area / (dist**2 * emitters.pmf[pick])
    return np.where(visible, value, 0.0)


def mixed_probability(environment: float, emitters: float) -> float:
    """The selection probability from the two light types' mean irradiances at the
    receivers (module docstring)."""
    a, b = environment, emitters
    total = a + b
    share = a / total if total > 0 and np.isfinite(total) else 0.5
    return DEFENSIVE / 2 + (1 - DEFENSIVE) * share


def environment_probability(
    camera: Camera | None,
    env: Environment,
    emitters: EmitterLights,
    queries_factory: Callable[[], TriangleQueries],
    triangles: np.ndarray,
    epsilon: float,
    spheres: SphereSet | None = None,
) -> float:
    """Probability of sampling the environment in next-event estimation: 0 without an
    environment, 1 without emitters, else measured at the camera's receivers.
    `queries_factory()` builds the TriangleQueries for `triangles` and `spheres` only when
    needed."""
    has_env = not env.is_black
    has_emitters = len(emitters.pmf) > 0 and float(emitters.pmf.sum()) > 0
    if not has_env:
        return 0.0
    if not has_emitters:
        return 1.0
    if camera is None:
        return mixed_probability(1.0, 1.0)
    queries = queries_factory()
    receivers = camera_receivers(camera, queries, triangles, spheres=spheres)
    rng = np.random.default_rng(SEED)
    e_env = environment_samples(env, receivers, queries, epsilon, rng)
    e_emit = emitter_samples(emitters, receivers, queries, epsilon, rng)
    if e_env.size == 0:  # the camera sees no surface: nothing to weigh the lights by
        return mixed_probability(1.0, 1.0)
    return mixed_probability(float(e_env.mean()), float(e_emit.mean()))


def bounding_sphere_probability(
    env: Environment, bounds: tuple[np.ndarray, np.ndarray], emitters: EmitterLights
) -> float:
    """The selection nrender used before (pbrt's power of an infinite light): pi^2 r^2 x
    the environment's mean luminance for the scene's bounding-sphere radius r, against the
    emitters' power (area x pi x L). Not used for rendering: the baseline that
    tools/light_selection_study.py and the tests measure the new estimate against."""
    h, w = env.radiance.shape[:2]
    sin_theta = np.sin(np.pi * (np.arange(h) + 0.5) / h)
    lum = env.radiance @ LUMINANCE
    mean = (
        0.0
        if env.is_black
        else env.scale * (lum * sin_theta[:, None]).sum() / (sin_theta.sum() * w)
    )
    radius = 0.5 * float(np.linalg.norm(np.asarray(bounds[1]) - np.asarray(bounds[0])))
    env_power = np.pi**2 * radius**2 * float(mean)
    v = emitters.vertices.astype(np.float64)
    area = 0.5 * np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1)
    emitter_power = float((area * emitters.radiance * np.pi).sum())
    total = env_power + emitter_power
    return env_power / total if total > 0 else 0.0
