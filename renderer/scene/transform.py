"""Affine object-to-world transforms (4x4, column vectors: p' = M p)."""

from __future__ import annotations

import numpy as np


def translation(t: np.ndarray) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = t
    return m


def scaling(s: np.ndarray) -> np.ndarray:
    return np.diag([*np.broadcast_to(np.asarray(s, np.float64), (3,)), 1.0])


def rotation_xyz(degrees: np.ndarray) -> np.ndarray:
    """Rotation about X, then Y, then Z (angles in degrees, right-handed)."""
    rx, ry, rz = np.radians(degrees)
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    mx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    my = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    mz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    m = np.eye(4)
    m[:3, :3] = mz @ my @ mx
    return m


def compose(translate: np.ndarray, rotate: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Scale first, then rotate, then translate."""
    return translation(translate) @ rotation_xyz(rotate) @ scaling(scale)


def transform_points(m: np.ndarray, p: np.ndarray) -> np.ndarray:
    return p @ m[:3, :3].T + m[:3, 3]


def transform_normals(m: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Normals go through the inverse transpose; the result is renormalised."""
    out = n @ np.linalg.inv(m[:3, :3])
    length = np.linalg.norm(out, axis=-1, keepdims=True)
    return out / np.where(length > 0, length, 1.0)
