"""The primitives the BVH holds: world-space triangles and analytic spheres.

Slots [0, T) of the joined tree are triangles, [T, T + S) spheres (bvh.join_bvhs);
`primitive_order` maps a slot to an input index in "triangles, then spheres" order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bvh import Bvh, build_bvh, join_bvhs


@dataclass
class SphereSet:
    """World-space spheres."""

    centers: np.ndarray  # [S, 3] float32
    radii: np.ndarray  # [S] float32

    @staticmethod
    def empty() -> SphereSet:
        return SphereSet(np.zeros((0, 3), np.float32), np.zeros(0, np.float32))

    @property
    def count(self) -> int:
        return int(self.radii.shape[0])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """[S, 3] box corners, rounded outwards to float32, so that rounding never culls
        a sphere's silhouette."""
        c = self.centers.astype(np.float64)
        r = self.radii.astype(np.float64)[:, None]
        lo = np.nextafter((c - r).astype(np.float32), np.float32(-np.inf))
        hi = np.nextafter((c + r).astype(np.float32), np.float32(np.inf))
        return lo, hi

    def take(self, order: np.ndarray) -> SphereSet:
        return SphereSet(self.centers[order], self.radii[order])


def build_primitive_bvh(triangles: np.ndarray, spheres: SphereSet) -> Bvh:
    """One BVH over `triangles` [T, 3, 3] and `spheres`: a tree for each, joined."""
    tree = build_bvh(triangles.min(axis=1), triangles.max(axis=1))
    if spheres.count == 0:
        return tree
    return join_bvhs(tree, build_bvh(*spheres.bounds()))


def sphere_slots(bvh: Bvh, triangle_count: int) -> np.ndarray:
    """[S] the input sphere at each sphere slot, in slot order."""
    return bvh.primitive_order[triangle_count:] - triangle_count
