"""Environment maps: a constant colour, an image (EXR/HDR/PNG), or a procedural sky.

All three become an equirectangular radiance map (see shaders/scene/environment.slang for
the direction convention); the renderer importance-samples whichever it gets.
"""

from __future__ import annotations

import numpy as np

# A constant environment is stored at this size so the sin(theta)-weighted sampling
# distribution is close to uniform over the sphere (a 1x1 map would oversample the poles).
CONSTANT_MAP_SIZE = (64, 32)


def texel_directions(width: int, height: int, oversample: int = 1) -> np.ndarray:
    """World directions [H*o, W*o, 3] through (sub)texel centres of an equirect map."""
    w, h = width * oversample, height * oversample
    u = (np.arange(w) + 0.5) / w
    v = (np.arange(h) + 0.5) / h
    phi = 2 * np.pi * (u[None, :] - 0.5)
    theta = np.pi * v[:, None]
    st = np.sin(theta)
    return np.stack(np.broadcast_arrays(st * np.sin(phi), np.cos(theta), -st * np.cos(phi)), axis=2)


def constant_map(radiance: np.ndarray) -> np.ndarray:
    w, h = CONSTANT_MAP_SIZE
    return np.broadcast_to(np.asarray(radiance, np.float32), (h, w, 3)).copy()


def sky_map(
    *,
    zenith: np.ndarray,
    horizon: np.ndarray,
    ground: np.ndarray,
    sun_direction: np.ndarray,
    sun_radiance: np.ndarray,
    sun_angle: float,
    resolution: tuple[int, int] = (512, 256),
) -> np.ndarray:
    """A gradient sky with a sun disc, as linear radiance [H, W, 3].

    Not a physical sky model: zenith-to-horizon blend above, a flat ground colour below,
    and a disc of `sun_angle` degrees (angular diameter) whose coverage of each texel is
    supersampled, so the sun's power does not depend on the map resolution.
    """
    width, height = resolution
    d = texel_directions(width, height)
    y = d[:, :, 1:2]
    up = np.clip(y, 0.0, 1.0)
    sky = zenith + (horizon - zenith) * (1.0 - up) ** 3
    # A narrow blend below the horizon avoids a hard seam in the map.
    blend = np.clip((y + 0.02) / 0.02, 0.0, 1.0)
    out = ground * (1 - blend) + sky * blend

    sun = np.asarray(sun_direction, np.float64)
    sun = sun / np.linalg.norm(sun)
    cos_radius = np.cos(np.radians(sun_angle) / 2)
    oversample = 4
    fine = texel_directions(width, height, oversample) @ sun > cos_radius
    coverage = fine.reshape(height, oversample, width, oversample).mean(axis=(1, 3))
    out = out + coverage[:, :, None] * np.asarray(sun_radiance)
    return out.astype(np.float32)
