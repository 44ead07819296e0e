"""Acceleration structures: host-side BVH build into flat buffers, batched ray queries."""

from .bvh import Bvh, build_bvh, join_bvhs
from .primitives import SphereSet, build_primitive_bvh
from .queries import RayHits, TriangleQueries

__all__ = [
    "Bvh",
    "RayHits",
    "SphereSet",
    "TriangleQueries",
    "build_bvh",
    "build_primitive_bvh",
    "join_bvhs",
]
