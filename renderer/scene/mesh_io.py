"""Mesh files (OBJ, PLY, STL, glTF/GLB, OFF...) read through trimesh."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SceneError
from ..input_files import check_path_text, is_file
from .types import Mesh

MESH_SUFFIXES = (".obj", ".ply", ".stl", ".gltf", ".glb", ".off")
# 16M triangles (about 1.5 GB of BVH and vertex data on the device) per mesh; a file
# larger than 2 GiB would take minutes to parse before failing that check anyway.
MAX_MESH_TRIANGLES = 1 << 24
MAX_MESH_VERTICES = 1 << 25
MAX_MESH_FILE_BYTES = 1 << 31
# Object-space coordinates (and world ones, checked with the instance transform): beyond
# this, squared distances in the float32 kernels overflow.
MAX_COORDINATE = 1e8


def mesh_from_trimesh(tm: Any, *, smooth: bool, source: str, prefix: str = "") -> Mesh:
    """Convert a trimesh.Trimesh; per-vertex normals only when `smooth`.

    Errors read "<prefix><source>: problem"; `prefix` names the scene file and key."""
    fail = f"{prefix}{source}: mesh"
    positions = np.asarray(tm.vertices, np.float64)
    faces = np.asarray(tm.faces, np.int64)
    if positions.ndim != 2 or positions.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise SceneError(
            f"{fail} has vertices of shape {list(positions.shape)} and faces of shape "
            f"{list(faces.shape)}, expected [n, 3] and [m, 3]"
        )
    if len(faces) > MAX_MESH_TRIANGLES or len(positions) > MAX_MESH_VERTICES:
        raise SceneError(
            f"{fail} has {len(faces)} triangles and {len(positions)} vertices; at most "
            f"{MAX_MESH_TRIANGLES} and {MAX_MESH_VERTICES} per mesh"
        )
    if len(faces) and (faces.min() < 0 or faces.max() >= len(positions)):
        bad = int(np.argmax(((faces < 0) | (faces >= len(positions))).any(axis=1)))
        raise SceneError(
            f"{fail} triangle {bad} refers to vertex {faces[bad].tolist()}, outside "
            f"0..{len(positions) - 1}"
        )
    if not np.isfinite(positions).all():
        raise SceneError(f"{fail} has NaN or infinite vertex positions")
    if len(positions) and np.abs(positions).max() > MAX_COORDINATE:
        raise SceneError(f"{fail} has vertex coordinates beyond +-{MAX_COORDINATE:g}")
    uv = getattr(getattr(tm, "visual", None), "uv", None)
    uvs = None
    uv = None if uv is None else np.asarray(uv, np.float64)
    if uv is not None and uv.ndim == 2 and uv.shape[1] >= 2 and len(uv) == len(positions):
        uvs = uv[:, :2]
        if not np.isfinite(uvs).all() or np.abs(uvs).max(initial=0.0) > MAX_COORDINATE:
            raise SceneError(f"{fail} has NaN, infinite or huge texture coordinates")
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
    if problem := check_path_text(str(path)):
        raise SceneError(f"{prefix}{path}: {problem}")
    if not is_file(path):
        raise SceneError(f"{prefix}mesh file not found: {path}")
    if path.stat().st_size > MAX_MESH_FILE_BYTES:
        raise SceneError(
            f"{prefix}{path}: mesh files are limited to {MAX_MESH_FILE_BYTES >> 30} GiB"
        )
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise SceneError(
            f"{prefix}{path}: unsupported mesh type '{path.suffix}' "
            f"(expected one of {', '.join(MESH_SUFFIXES)})"
        )
    try:
        # Not force="mesh": that path rebuilds the mesh and drops the file's own vertex
        # normals (trimesh 4-5), so authored smooth shading would be recomputed from faces.
        tm = trimesh.load(str(path), process=False)
        if isinstance(tm, trimesh.Scene):
            tm = _merged(tm)
    except Exception as exc:
        raise SceneError(f"{prefix}{path}: cannot read mesh ({type(exc).__name__}: {exc})") from exc
    if not hasattr(tm, "faces") or len(tm.faces) == 0:
        raise SceneError(f"{prefix}{path}: mesh has no triangles")
    return mesh_from_trimesh(tm, smooth=smooth, source=str(path), prefix=prefix)


def _merged(scene: Any) -> Any:
    """Every part of a trimesh Scene (a multi-material OBJ, a glTF) as one Trimesh placed by
    its node transforms, keeping the parts' own vertex normals, which Scene.to_mesh drops."""
    import trimesh

    positions, normals, faces, uvs = [], [], [], []
    offset = 0
    for node in scene.graph.nodes_geometry:
        matrix, name = scene.graph[node]
        part = scene.geometry[name]
        if not hasattr(part, "faces") or len(part.faces) == 0:
            continue
        m = np.asarray(matrix, np.float64)
        p = np.asarray(part.vertices, np.float64)
        positions.append(p @ m[:3, :3].T + m[:3, 3])
        with np.errstate(all="ignore"):  # a singular matrix gives NaN, rejected later
            n = np.asarray(part.vertex_normals, np.float64) @ np.linalg.inv(m[:3, :3])
            normals.append(n / np.linalg.norm(n, axis=1, keepdims=True))
        faces.append(np.asarray(part.faces, np.int64) + offset)
        uv = getattr(getattr(part, "visual", None), "uv", None)
        uvs.append(None if uv is None or len(uv) != len(p) else np.asarray(uv)[:, :2])
        offset += len(p)
    if not positions:
        return trimesh.Trimesh()
    merged = trimesh.Trimesh(
        vertices=np.concatenate(positions),
        faces=np.concatenate(faces),
        vertex_normals=np.concatenate(normals),
        process=False,
    )
    if all(uv is not None for uv in uvs):
        merged.visual = trimesh.visual.TextureVisuals(uv=np.concatenate(uvs))
    return merged


def world_reach(mesh: Mesh, transform: np.ndarray) -> float:
    """The largest world coordinate (absolute) of a mesh's bounding box under `transform`."""
    if len(mesh.positions) == 0:
        return 0.0
    lo, hi = mesh.positions.min(axis=0), mesh.positions.max(axis=0)
    corners = np.array([[(lo, hi)[(c >> k) & 1][k] for k in range(3)] for c in range(8)])
    with np.errstate(over="ignore", invalid="ignore"):
        world = corners @ transform[:3, :3].T + transform[:3, 3]
    return float(np.abs(world).max())
