"""Procedural meshes: sphere, plane, box, cylinder and torus, with normals and uvs.

Every shape is centred on the origin in object space (place it with an instance
transform); the plane and the axes of the cylinder and torus are along +Y.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .types import Mesh

SurfaceFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _orient_and_clean(positions: np.ndarray, faces: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Drop zero-area faces and wind the rest so their geometric normal agrees with `normals`."""
    p0, p1, p2 = (positions[faces[:, k]] for k in range(3))
    face_n = np.cross(p1 - p0, p2 - p0)
    keep = np.linalg.norm(face_n, axis=1) > 1e-12 * max(1.0, float(np.abs(positions).max())) ** 2
    faces, face_n = faces[keep], face_n[keep]
    vertex_n = normals[faces].sum(axis=1)
    flip = np.einsum("ij,ij->i", face_n, vertex_n) < 0
    faces[flip] = faces[flip][:, ::-1]
    return faces


def _grid(nu: int, nv: int, surface: SurfaceFn) -> tuple[np.ndarray, ...]:
    """Vertices and faces of a (nu x nv)-quad parametric patch over [0,1]^2."""
    u, v = np.meshgrid(np.linspace(0, 1, nu + 1), np.linspace(0, 1, nv + 1), indexing="xy")
    positions, normals = surface(u.ravel(), v.ravel())
    # sin(pi) and sin(2 pi) are ~1e-16, not 0: snap them so the seam and pole vertices
    # coincide exactly with their neighbours and the mesh is watertight.
    scale = max(1.0, float(np.abs(positions).max()))
    positions = np.where(np.abs(positions) < 1e-12 * scale, 0.0, positions)
    normals = np.where(np.abs(normals) < 1e-12, 0.0, normals)
    uvs = np.stack([u.ravel(), v.ravel()], axis=1)
    i, j = np.meshgrid(np.arange(nu), np.arange(nv), indexing="xy")
    a = (j * (nu + 1) + i).ravel()
    b, c, d = a + 1, a + nu + 1, a + nu + 2
    faces = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])
    return positions, normals, uvs, faces


def _finish(
    positions: np.ndarray,
    normals: np.ndarray,
    uvs: np.ndarray,
    faces: np.ndarray,
    smooth: bool,
    source: str,
) -> Mesh:
    faces = _orient_and_clean(positions, faces.astype(np.int64), normals)
    return Mesh(
        positions=positions.astype(np.float64),
        faces=faces,
        normals=normals / np.linalg.norm(normals, axis=1, keepdims=True) if smooth else None,
        uvs=uvs.astype(np.float64),
        source=source,
    )


def sphere(radius: float = 1.0, segments: int = 64, rings: int = 32, smooth: bool = True) -> Mesh:
    """UV sphere; u runs around +Y, v from the south pole (0) to the north pole (1)."""

    def surface(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        phi, theta = 2 * np.pi * u, np.pi * (1 - v)
        n = np.stack([np.sin(theta) * np.sin(phi), np.cos(theta), np.sin(theta) * np.cos(phi)], 1)
        return radius * n, n

    return _finish(*_grid(segments, rings, surface), smooth, "sphere")


def plane(size: tuple[float, float] = (1.0, 1.0)) -> Mesh:
    """Rectangle in the XZ plane facing +Y; uv spans [0, 1] across it."""
    sx, sz = size
    positions = np.array(
        [[-sx / 2, 0, sz / 2], [sx / 2, 0, sz / 2], [sx / 2, 0, -sz / 2], [-sx / 2, 0, -sz / 2]],
        np.float64,
    )
    normals = np.tile([0.0, 1.0, 0.0], (4, 1))
    uvs = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    return _finish(positions, normals, uvs, faces, False, "plane")


def box(size: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> Mesh:
    """Axis-aligned box with flat faces, each face mapped to the full uv square."""
    half = np.asarray(size, np.float64) / 2
    positions, normals, uvs, faces = [], [], [], []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            n = np.zeros(3)
            n[axis] = sign
            a, b = (axis + 1) % 3, (axis + 2) % 3
            corners = []
            for cu, cv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                p = np.zeros(3)
                p[axis] = sign * half[axis]
                p[a] = cu * half[a]
                p[b] = cv * half[b]
                corners.append(p)
            base = len(positions)
            positions += corners
            normals += [n] * 4
            uvs += [[0, 0], [1, 0], [1, 1], [0, 1]]
            faces += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
    return _finish(
        np.array(positions),
        np.array(normals),
        np.array(uvs, np.float64),
        np.array(faces),
        False,
        "box",
    )


def cylinder(
    radius: float = 1.0,
    height: float = 2.0,
    segments: int = 64,
    caps: bool = True,
    smooth: bool = True,
) -> Mesh:
    """Cylinder along Y centred on the origin; smooth sides, flat caps."""

    def side(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        phi = 2 * np.pi * u
        n = np.stack([np.sin(phi), np.zeros_like(phi), np.cos(phi)], 1)
        p = radius * n
        p[:, 1] = (v - 0.5) * height
        return p, n

    parts = [_grid(segments, 1, side)]
    if caps:
        for sign in (-1.0, 1.0):
            phi = 2 * np.pi * np.arange(segments) / segments
            ring = np.stack(
                [radius * np.sin(phi), np.full_like(phi, sign * height / 2), radius * np.cos(phi)],
                1,
            )
            cap_p = np.vstack([[0.0, sign * height / 2, 0.0], ring])
            cap_n = np.tile([0.0, sign, 0.0], (segments + 1, 1))
            cap_uv = np.vstack([[0.5, 0.5], 0.5 + 0.5 * np.stack([np.sin(phi), np.cos(phi)], 1)])
            k = np.arange(segments)
            cap_f = np.stack([np.zeros(segments, int), 1 + k, 1 + (k + 1) % segments], 1)
            parts.append((cap_p, cap_n, cap_uv, cap_f))
    mesh = _merge(parts, "cylinder")
    if not smooth:
        mesh.normals = None  # flat shading everywhere
    return mesh


def _merge(parts: list[tuple[np.ndarray, ...]], source: str) -> Mesh:
    positions, normals, uvs, faces, offset = [], [], [], [], 0
    for p, n, uv, f in parts:
        faces.append(_orient_and_clean(p, f.astype(np.int64), n) + offset)
        positions.append(p)
        normals.append(n / np.linalg.norm(n, axis=1, keepdims=True))
        uvs.append(uv)
        offset += len(p)
    return Mesh(
        np.vstack(positions), np.vstack(faces), np.vstack(normals), np.vstack(uvs), source=source
    )


def torus(
    major_radius: float = 1.0,
    minor_radius: float = 0.25,
    segments: int = 64,
    rings: int = 32,
    smooth: bool = True,
) -> Mesh:
    """Torus around +Y: the tube's centre circle has `major_radius` in the XZ plane."""

    def surface(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        phi, theta = 2 * np.pi * u, 2 * np.pi * v
        n = np.stack([np.cos(theta) * np.sin(phi), np.sin(theta), np.cos(theta) * np.cos(phi)], 1)
        centre = major_radius * np.stack([np.sin(phi), np.zeros_like(phi), np.cos(phi)], 1)
        return centre + minor_radius * n, n

    return _finish(*_grid(segments, rings, surface), smooth, "torus")
