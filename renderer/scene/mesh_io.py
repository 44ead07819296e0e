"""Mesh files (OBJ, PLY, STL, glTF/GLB, OFF...) read through trimesh."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SceneError
from .types import Mesh

MESH_SUFFIXES = (".obj", ".ply", ".stl", ".gltf", ".glb", ".off")


def mesh_from_trimesh(tm: Any, *, smooth: bool, source: str, prefix: str = "") -> Mesh:
    """Convert a trimesh.Trimesh; per-vertex normals only when `smooth`.

    Errors read "<prefix><source>: problem"; `prefix` names the scene file and key."""
    positions = np.asarray(tm.vertices, np.float64)
    faces = np.asarray(tm.faces, np.int64).reshape(-1, 3)
    if not np.isfinite(positions).all():
        raise SceneError(f"{prefix}{source}: mesh has NaN or infinite vertex positions")
    uv = getattr(getattr(tm, "visual", None), "uv", None)
    uvs = None
    if uv is not None and len(uv) == len(positions):
        uvs = np.asarray(uv, np.float64)
        if not np.isfinite(uvs).all():
            raise SceneError(f"{prefix}{source}: mesh has NaN or infinite texture coordinates")
    normals = None
    if smooth and len(faces):
        normals = np.asarray(tm.vertex_normals, np.float64)
        if normals.shape != positions.shape or not np.isfinite(normals).all():
            normals = None
    return Mesh(positions=positions, faces=faces, normals=normals, uvs=uvs, source=source)


def load_mesh_file(path: Path, *, smooth: bool = True, where: str = "") -> Mesh:
    """Read one mesh (all parts of a multi-object file merged); errors name `path`."""
    import trimesh

    prefix = f"{where}: " if where else ""
    if not path.is_file():
        raise SceneError(f"{prefix}mesh file not found: {path}")
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise SceneError(
            f"{prefix}{path}: unsupported mesh type '{path.suffix}' "
            f"(expected one of {', '.join(MESH_SUFFIXES)})"
        )
    try:
        tm = trimesh.load(str(path), force="mesh", process=False)
    except Exception as exc:
        raise SceneError(f"{prefix}{path}: cannot read mesh ({type(exc).__name__}: {exc})") from exc
    if not hasattr(tm, "faces") or len(tm.faces) == 0:
        raise SceneError(f"{prefix}{path}: mesh has no triangles")
    return mesh_from_trimesh(tm, smooth=smooth, source=str(path), prefix=prefix)
