"""Posed pinhole cameras of NeRF datasets: the `transforms_*.json` convention.

- `transform_matrix` is camera-to-world, 4x4, in the OpenGL camera convention: the camera
  looks down its local -Z with +Y up and +X to the right.
- `camera_angle_x` is the horizontal field of view in radians; the focal length in pixels
  is f = W / (2 tan(camera_angle_x / 2)), with square pixels and the principal point at
  the image centre.
- Pixel (i, j) spans [i, i + 1) x [j, j + 1) with row 0 at the top; its centre is
  (i + 0.5, j + 0.5). The ray through continuous pixel coordinates (x, y) has camera-space
  direction ((x - W / 2) / f, -(y - H / 2) / f, -1). (The original NeRF code put rays
  through pixel corners, (i - W / 2) / f; nrender, like Instant-NGP and nerfstudio, uses
  centres, and renders its own datasets the same way.)
"""

from __future__ import annotations

import math

import numpy as np
import torch


def focal_length(width: int, camera_angle_x: float) -> float:
    return 0.5 * width / math.tan(0.5 * camera_angle_x)


def pixel_rays(
    c2w: torch.Tensor, focal: float, width: int, height: int, pixels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """World-space origins and unit directions [P, 3] of rays through continuous pixel
    coordinates `pixels` [P, 2] (x, y) of cameras `c2w` [P, 4, 4] (or one [4, 4])."""
    x = (pixels[:, 0] - 0.5 * width) / focal
    y = -(pixels[:, 1] - 0.5 * height) / focal
    local = torch.stack([x, y, -torch.ones_like(x)], dim=-1)
    rot = c2w[..., :3, :3]
    dirs = (rot @ local[..., None])[..., 0] if rot.dim() == 3 else local @ rot.T
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    origins = c2w[..., :3, 3].expand_as(dirs)
    return origins.contiguous(), dirs


def project(
    c2w: np.ndarray, focal: float, width: int, height: int, points: np.ndarray
) -> np.ndarray:
    """Continuous pixel coordinates [P, 2] of world points [P, 3] seen by camera `c2w`
    (the inverse of pixel_rays; points behind the camera give meaningless values)."""
    w2c = np.linalg.inv(np.asarray(c2w, np.float64))
    local = np.asarray(points, np.float64) @ w2c[:3, :3].T + w2c[:3, 3]
    depth = -local[:, 2]
    x = local[:, 0] / depth * focal + 0.5 * width
    y = -local[:, 1] / depth * focal + 0.5 * height
    return np.stack([x, y], axis=-1)
