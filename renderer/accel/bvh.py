"""Binned-SAH BVH build, vectorised over a whole tree level at a time.

The tree is built breadth first: every node of a level bins its primitives' centroids
along the three axes at once (numpy bincount / ufunc.at over all primitives of the
level), evaluates the surface-area heuristic at every bin boundary, and partitions its
range of the primitive order in place with prefix sums. No Python loop runs per node, so
a million triangles build in seconds.

The result maps onto `BvhNode` in shaders/scene/geometry.slang: children of an interior
node are consecutive, leaves index a contiguous run of the primitive order.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

# BVH_STACK_SIZE of shaders/scene/geometry.slang: the traversal stack holds one entry per
# level, so a tree deeper than this would have subtrees the traversal cannot reach.
BVH_STACK_SIZE = 64
# Depth after which nodes split at the median (halving their primitives), whatever SAH
# prefers: e.g. thousands of identical triangles, or nested ones that SAH peels one by
# one. Lowered for large inputs so that median + log2(N) levels fit the stack.
_MEDIAN_SPLIT_DEPTH = 36
_TRAVERSAL_COST = 1.0  # relative to one triangle test


@dataclass
class Bvh:
    """Flat BVH: node arrays [M, ...] and the primitive order [N]."""

    bounds_min: np.ndarray  # [M, 3] float32
    bounds_max: np.ndarray  # [M, 3] float32
    first_index: np.ndarray  # [M] uint32: first child (interior) or first primitive (leaf)
    primitive_count: np.ndarray  # [M] uint32: 0 for interior nodes
    primitive_order: np.ndarray  # [N] int64: input primitive stored at each slot
    depth: int
    build_seconds: float

    @property
    def node_count(self) -> int:
        return int(self.first_index.shape[0])

    @property
    def leaf_count(self) -> int:
        return int(np.count_nonzero(self.primitive_count))


def _half_area(bmin: np.ndarray, bmax: np.ndarray) -> np.ndarray:
    d = np.maximum(bmax - bmin, 0.0)
    return d[..., 0] * d[..., 1] + d[..., 1] * d[..., 2] + d[..., 2] * d[..., 0]


def _half_area_rows(ext: np.ndarray) -> np.ndarray:
    """Half surface area of boxes given as extents [3, ...]."""
    return ext[0] * ext[1] + ext[1] * ext[2] + ext[2] * ext[0]


def _segment_ids(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges of the given lengths: the range of each element and each range's offset."""
    offsets = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=offsets[1:])
    seg = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    return seg, offsets


def _best_splits(
    c: np.ndarray,
    pmin: np.ndarray,
    pmax: np.ndarray,
    seg: np.ndarray,
    offsets: np.ndarray,
    max_bins: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """SAH over centroid bins for every node of a level.

    `c`, `pmin`, `pmax` are [3, P] (one row per axis, so reductions run on contiguous
    memory). Returns per node the best cost (inf where no split separates anything), its
    axis and the last bin of the left side, and per primitive the bin on each axis [3, P].
    """
    frontier = len(offsets)
    # Fewer bins when nodes are small: the bin arrays then stay near the primitive count.
    per_node = max(2.0, len(seg) / frontier)
    bins = int(np.clip(2 ** int(np.log2(per_node)), 4, max_bins))
    cmin = np.minimum.reduceat(c, offsets, axis=1)
    cmax = np.maximum.reduceat(c, offsets, axis=1)
    extent = cmax - cmin
    scale = np.where(extent > 0, bins / np.where(extent > 0, extent, 1), 0).astype(np.float32)
    bin_index = ((c - cmin[:, seg]) * scale[:, seg]).astype(np.int32)
    np.clip(bin_index, 0, bins - 1, out=bin_index)

    # Per-bin arrays are [axis, bin, node]: scans over bins then run along long rows.
    cost = np.empty((3, bins - 1, frontier))
    for axis in range(3):
        key = bin_index[axis].astype(np.int64) * frontier + seg
        cnt = np.bincount(key, minlength=frontier * bins).reshape(bins, frontier)
        lo = np.full((3, bins * frontier), np.inf, np.float32)
        hi = np.full((3, bins * frontier), -np.inf, np.float32)
        for k in range(3):
            np.minimum.at(lo[k], key, pmin[k])
            np.maximum.at(hi[k], key, pmax[k])
        lo = lo.reshape(3, bins, frontier)
        hi = hi.reshape(3, bins, frontier)
        left_n = np.cumsum(cnt, axis=0)[:-1]
        right_n = left_n[-1:] + cnt[-1:] - left_n
        left_ext = (np.maximum.accumulate(hi, axis=1) - np.minimum.accumulate(lo, axis=1))[:, :-1]
        right_ext = (
            np.maximum.accumulate(hi[:, ::-1], axis=1) - np.minimum.accumulate(lo[:, ::-1], axis=1)
        )[:, -2::-1]
        with np.errstate(invalid="ignore"):
            left_area = _half_area_rows(left_ext)
            right_area = _half_area_rows(right_ext)
            axis_cost = left_area * left_n + right_area * right_n
        axis_cost[(left_n == 0) | (right_n == 0)] = np.inf
        cost[axis] = axis_cost

    flat = cost.reshape(-1, frontier)
    best = np.argmin(flat, axis=0)
    best_cost = flat[best, np.arange(frontier)]
    return best_cost, best // (bins - 1), best % (bins - 1), bin_index


def build_bvh(
    prim_min: np.ndarray,
    prim_max: np.ndarray,
    *,
    max_leaf_size: int = 8,
    bins: int = 16,
) -> Bvh:
    """Build a binned-SAH BVH over primitive bounds `prim_min`, `prim_max` [N, 3]."""
    start_time = time.perf_counter()
    prim_min = np.ascontiguousarray(prim_min, dtype=np.float32)
    prim_max = np.ascontiguousarray(prim_max, dtype=np.float32)
    n = prim_min.shape[0]
    if prim_min.shape != (n, 3) or prim_max.shape != (n, 3):
        raise ValueError("primitive bounds must be [N, 3] arrays")
    if max_leaf_size < 1 or bins < 2:
        raise ValueError("max_leaf_size must be >= 1 and bins >= 2")
    # Bounds and centroids in slot order, one row per axis; partitions permute them along
    # with `order`, so each level reads contiguous runs instead of gathering at random.
    slot = np.concatenate([prim_min.T, prim_max.T])  # [6, N]: min xyz, max xyz
    slot_min, slot_max = slot[:3], slot[3:]

    capacity = max(1, 2 * n - 1)
    node_min = np.zeros((capacity, 3), np.float32)
    node_max = np.zeros((capacity, 3), np.float32)
    node_first = np.zeros(capacity, np.uint32)
    node_count = np.zeros(capacity, np.uint32)
    order = np.arange(n, dtype=np.int64)
    # From here every level at least halves a node: at most ceil(log2 n) more levels.
    median_depth = min(_MEDIAN_SPLIT_DEPTH, BVH_STACK_SIZE - 2 - math.ceil(math.log2(max(n, 2))))
    if n == 0:
        return Bvh(
            node_min[:0],
            node_max[:0],
            node_first[:0],
            node_count[:0],
            order,
            0,
            time.perf_counter() - start_time,
        )

    # Frontier: nodes of the current level, sorted by the start of their range.
    ids = np.zeros(1, np.int64)
    starts = np.zeros(1, np.int64)
    counts = np.full(1, n, np.int64)
    next_id = 1
    depth = 0
    while len(ids):
        depth += 1
        seg, offsets = _segment_ids(counts)
        pos = starts[seg] + (np.arange(len(seg), dtype=np.int64) - offsets[seg])
        bmin = np.minimum.reduceat(slot_min[:, pos], offsets, axis=1).T
        bmax = np.maximum.reduceat(slot_max[:, pos], offsets, axis=1).T
        node_min[ids] = bmin
        node_max[ids] = bmax

        # One or two primitives: a leaf without further thought.
        tiny = counts <= 2
        node_first[ids[tiny]] = starts[tiny]
        node_count[ids[tiny]] = counts[tiny]
        keep = ~tiny
        if not keep.any():
            break
        pos = pos[keep[seg]]
        ids, starts, counts = ids[keep], starts[keep], counts[keep]
        bmin, bmax = bmin[keep], bmax[keep]
        seg, offsets = _segment_ids(counts)

        level_min, level_max = slot_min[:, pos], slot_max[:, pos]
        best_cost, best_axis, best_split, bin_index = _best_splits(
            0.5 * (level_min + level_max), level_min, level_max, seg, offsets, bins
        )
        node_area = _half_area(bmin, bmax)
        with np.errstate(invalid="ignore", divide="ignore"):
            split_cost = _TRAVERSAL_COST + best_cost / np.where(node_area > 0, node_area, 1.0)
        make_leaf = (counts <= max_leaf_size) & (split_cost >= counts)
        median = ~make_leaf & (~np.isfinite(best_cost) | (depth >= median_depth))
        node_first[ids[make_leaf]] = starts[make_leaf]
        node_count[ids[make_leaf]] = counts[make_leaf]

        split = ~make_leaf
        if not split.any():
            break
        # Left/right flag per primitive, then a stable partition of each node's range.
        local_rank = np.arange(len(seg), dtype=np.int64) - offsets[seg]
        goes_left = np.take_along_axis(bin_index, best_axis[seg][None, :], 0)[0] <= best_split[seg]
        goes_left = np.where(median[seg], local_rank < (counts[seg] // 2), goes_left)
        left_cum = np.cumsum(goes_left) - goes_left  # exclusive prefix over the level
        left_before = left_cum - left_cum[offsets][seg]
        n_left = np.add.reduceat(goes_left.astype(np.int64), offsets)
        new_local = np.where(goes_left, left_before, n_left[seg] + (local_rank - left_before))
        moved = split[seg]
        src = pos[moved]
        dst = starts[seg[moved]] + new_local[moved]
        order[dst] = order[src]
        slot[:, dst] = slot[:, src]

        split_ids = ids[split]
        child = next_id + 2 * np.arange(len(split_ids), dtype=np.int64)
        next_id += 2 * len(split_ids)
        node_first[split_ids] = child
        node_count[split_ids] = 0
        s_start, s_left, s_count = starts[split], n_left[split], counts[split]
        ids = np.stack([child, child + 1], axis=1).reshape(-1)
        starts = np.stack([s_start, s_start + s_left], axis=1).reshape(-1)
        counts = np.stack([s_left, s_count - s_left], axis=1).reshape(-1)

    if depth > BVH_STACK_SIZE:  # the bound above makes this unreachable; never render it
        raise RuntimeError(f"BVH of depth {depth} exceeds the traversal stack ({BVH_STACK_SIZE})")
    return Bvh(
        node_min[:next_id].copy(),
        node_max[:next_id].copy(),
        node_first[:next_id].copy(),
        node_count[:next_id].copy(),
        order,
        depth,
        time.perf_counter() - start_time,
    )


def join_bvhs(first: Bvh, second: Bvh) -> Bvh:
    """One tree over both primitive sets: a new root over the two trees. The second set's
    primitives take the slots after the first's (its leaves' `first_index` and its
    `primitive_order` are offset by the first set's count), so every leaf holds primitives
    of one set only (shaders/scene/geometry.slang tests the kind once per leaf).

    Node layout: [root, first's root, second's root, first's other nodes, second's other
    nodes]; the children of an interior node stay consecutive."""
    offset = len(first.primitive_order)
    if second.node_count == 0:
        return first
    if first.node_count == 0:
        return second  # no primitives before it: its slots need no offset
    n_first = first.node_count

    def moved(bvh: Bvh, root: int, others: int) -> np.ndarray:
        """New index of each node of `bvh`: its root to `root`, node i >= 1 to others + i."""
        index = np.arange(bvh.node_count, dtype=np.int64) + others
        index[0] = root
        return index

    new_first = moved(first, 1, 2)  # first's nodes 1.. at 3..
    new_second = moved(second, 2, n_first + 1)  # second's nodes 1.. after them
    total = n_first + second.node_count + 1
    bounds_min = np.empty((total, 3), np.float32)
    bounds_max = np.empty((total, 3), np.float32)
    first_index = np.empty(total, np.uint32)
    primitive_count = np.empty(total, np.uint32)
    for bvh, new, leaf_offset in ((first, new_first, 0), (second, new_second, offset)):
        leaf = bvh.primitive_count > 0
        bounds_min[new] = bvh.bounds_min
        bounds_max[new] = bvh.bounds_max
        primitive_count[new] = bvh.primitive_count
        # interior nodes point at their (moved) first child; leaves at their slots
        child = new[np.where(leaf, 0, bvh.first_index)]
        first_index[new] = np.where(leaf, bvh.first_index.astype(np.int64) + leaf_offset, child)
    bounds_min[0] = np.minimum(first.bounds_min[0], second.bounds_min[0])
    bounds_max[0] = np.maximum(first.bounds_max[0], second.bounds_max[0])
    first_index[0] = 1
    primitive_count[0] = 0
    depth = max(first.depth, second.depth) + 1
    if depth > BVH_STACK_SIZE:
        raise RuntimeError(f"BVH of depth {depth} exceeds the traversal stack ({BVH_STACK_SIZE})")
    return Bvh(
        bounds_min,
        bounds_max,
        first_index,
        primitive_count,
        np.concatenate([first.primitive_order, second.primitive_order + offset]),
        depth,
        first.build_seconds + second.build_seconds,
    )
