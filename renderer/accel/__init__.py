"""Acceleration structures: host-side BVH build into flat buffers, batched ray queries."""

from .bvh import Bvh, build_bvh
from .queries import RayHits, TriangleQueries

__all__ = ["Bvh", "RayHits", "TriangleQueries", "build_bvh"]
