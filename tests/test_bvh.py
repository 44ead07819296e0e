"""BVH build invariants and traversal against brute force (Slang and numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from renderer.accel import TriangleQueries, build_bvh
from renderer.scene import shapes


def random_soup(count: int, seed: int, spread: float = 0.4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-2, 2, (count, 1, 3))
    return (centres + rng.normal(scale=spread, size=(count, 3, 3))).astype(np.float32)


def random_rays(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    origins = rng.normal(scale=3.0, size=(count, 3))
    targets = rng.uniform(-2, 2, (count, 3))  # aim into the soup so most rays hit
    d = targets - origins
    return origins.astype(np.float32), (d / np.linalg.norm(d, axis=1, keepdims=True)).astype(
        np.float32
    )


def numpy_closest_hit(
    tris: np.ndarray, o: np.ndarray, d: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Moller-Trumbore in float64 over all triangles: [R] t (inf = miss) and index."""
    p0, e1, e2 = (
        tris[:, 0].astype(np.float64),
        (tris[:, 1] - tris[:, 0]).astype(np.float64),
        (tris[:, 2] - tris[:, 0]).astype(np.float64),
    )
    o = o.astype(np.float64)[:, None, :]
    d = d.astype(np.float64)[:, None, :]
    pvec = np.cross(d, e2)
    det = np.einsum("rtk,tk->rt", pvec, e1)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / det
        tvec = o - p0
        u = np.einsum("rtk,rtk->rt", tvec, pvec) * inv
        q = np.cross(tvec, e1)
        v = np.einsum("rtk,rtk->rt", np.broadcast_to(d, q.shape), q) * inv
        t = np.einsum("rtk,tk->rt", q, e2) * inv
    ok = (np.abs(det) > 1e-12) & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
    t = np.where(ok, t, np.inf)
    return t.min(axis=1), t.argmin(axis=1)


def check_invariants(bvh, prim_min: np.ndarray, prim_max: np.ndarray) -> None:
    n = len(prim_min)
    leaves = bvh.primitive_count > 0
    counts = bvh.primitive_count[leaves].astype(np.int64)
    firsts = bvh.first_index[leaves].astype(np.int64)
    slots = np.concatenate([np.arange(f, f + c) for f, c in zip(firsts, counts, strict=True)])
    assert np.array_equal(np.sort(slots), np.arange(n)), "every slot in exactly one leaf"
    assert np.array_equal(np.sort(bvh.primitive_order), np.arange(n))
    for node in np.nonzero(leaves)[0]:
        prims = bvh.primitive_order[
            bvh.first_index[node] : bvh.first_index[node] + bvh.primitive_count[node]
        ]
        assert (prim_min[prims] >= bvh.bounds_min[node]).all()
        assert (prim_max[prims] <= bvh.bounds_max[node]).all()
    interior = np.nonzero(~leaves)[0]
    for child_offset in (0, 1):
        child = bvh.first_index[interior].astype(np.int64) + child_offset
        assert (bvh.bounds_min[child] >= bvh.bounds_min[interior]).all()
        assert (bvh.bounds_max[child] <= bvh.bounds_max[interior]).all()
    assert bvh.depth < 64, "traversal stack holds 64 entries"


@pytest.mark.parametrize("count", [1, 2, 7, 300, 5000])
def test_build_invariants(count: int) -> None:
    tris = random_soup(count, seed=count)
    bvh = build_bvh(tris.min(axis=1), tris.max(axis=1), max_leaf_size=4)
    check_invariants(bvh, tris.min(axis=1), tris.max(axis=1))


def test_identical_triangles_stay_shallow() -> None:
    # Nothing separates identical boxes by SAH: the median fallback must bound the depth.
    tri = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    tris = np.repeat(tri[None], 4000, axis=0)
    bvh = build_bvh(tris.min(axis=1), tris.max(axis=1))
    check_invariants(bvh, tris.min(axis=1), tris.max(axis=1))


def test_empty_build() -> None:
    bvh = build_bvh(np.zeros((0, 3)), np.zeros((0, 3)))
    assert bvh.node_count == 0


def test_closest_hit_matches_brute_force_on_soups(cpu) -> None:
    for seed, count in ((1, 50), (2, 2000)):
        tris = random_soup(count, seed)
        q = TriangleQueries(cpu, tris)
        o, d = random_rays(3000, seed + 10)
        bvh_hits = q.closest_hit(o, d)
        brute = q.closest_hit_brute_force(o, d)
        assert bvh_hits.hit.mean() > 0.3
        np.testing.assert_array_equal(bvh_hits.primitive, brute.primitive)
        np.testing.assert_array_equal(bvh_hits.t, brute.t)
        np.testing.assert_array_equal(bvh_hits.barycentrics, brute.barycentrics)
        # Any-hit agrees with closest hit on whether something is there.
        np.testing.assert_array_equal(q.occluded(o, d), bvh_hits.hit)
        # And a float64 reference agrees wherever a hit is not within rounding of an edge.
        t_ref, idx_ref = numpy_closest_hit(tris, o, d)
        agree = np.isfinite(t_ref) == bvh_hits.hit
        assert agree.mean() > 0.999
        both = np.isfinite(t_ref) & bvh_hits.hit
        np.testing.assert_allclose(bvh_hits.t[both], t_ref[both], rtol=1e-4, atol=1e-5)
        assert (bvh_hits.primitive[both] == idx_ref[both]).mean() > 0.999


def test_degenerate_and_coplanar_triangles(cpu) -> None:
    rng = np.random.default_rng(5)
    base = random_soup(400, 3)
    degenerate = [
        np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2]], np.float32),  # collinear
        np.array([[0.5, 0.5, 0.5]] * 3, np.float32),  # a point
        np.array([[0, 0, 0], [0, 0, 0], [1, 0, 0]], np.float32),  # repeated vertex
    ]
    # Overlapping coplanar triangles in z = 0.25 and duplicates of soup triangles.
    coplanar = []
    for _ in range(60):
        c = rng.uniform(-1, 1, 2)
        pts = np.concatenate(
            [c + rng.normal(scale=0.5, size=(3, 2)), np.full((3, 1), 0.25)], axis=1
        )
        coplanar.append(pts.astype(np.float32))
    tris = np.concatenate([base, np.stack(degenerate * 10), np.stack(coplanar), base[:50]])
    q = TriangleQueries(cpu, tris)
    o, d = random_rays(4000, 9)
    # Plus rays straight down through the coplanar sheet.
    o2 = np.concatenate([rng.uniform(-1.5, 1.5, (1000, 2)), np.full((1000, 1), 3.0)], axis=1)
    d2 = np.tile([0.0, 0.0, -1.0], (1000, 1))
    o, d = np.concatenate([o, o2]).astype(np.float32), np.concatenate([d, d2]).astype(np.float32)
    bvh_hits = q.closest_hit(o, d)
    brute = q.closest_hit_brute_force(o, d)
    np.testing.assert_array_equal(bvh_hits.primitive, brute.primitive)
    np.testing.assert_array_equal(bvh_hits.t, brute.t)
    np.testing.assert_array_equal(q.occluded(o, d), bvh_hits.hit)


def test_closed_mesh_is_watertight(cpu) -> None:
    # Rays from inside a closed sphere, aimed exactly at its vertices and edge midpoints,
    # must all hit: the watertight test lets none slip between neighbouring triangles.
    mesh = shapes.sphere(radius=1.0, segments=24, rings=12, smooth=False)
    tris = mesh.positions[mesh.faces].astype(np.float32)
    q = TriangleQueries(cpu, tris)
    targets = np.concatenate(
        [mesh.positions, 0.5 * (tris[:, 0] + tris[:, 1]), 0.5 * (tris[:, 1] + tris[:, 2])]
    )
    for origin in ([0.0, 0.0, 0.0], [0.1, -0.2, 0.3]):
        d = targets - np.asarray(origin)
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        hits = q.closest_hit(np.tile(origin, (len(d), 1)), d)
        assert hits.hit.all(), f"{(~hits.hit).sum()} rays escaped the closed mesh"


def test_t_max_limits_hits(cpu) -> None:
    tri = np.array([[[-1, -1, 0], [1, -1, 0], [0, 1, 0]]], np.float32)
    q = TriangleQueries(cpu, tri)
    o = np.array([[0, 0, 2], [0, 0, 2]], np.float32)
    d = np.array([[0, 0, -1], [0, 0, -1]], np.float32)
    hits = q.closest_hit(o, d, t_max=np.array([3.0, 1.5], np.float32))
    assert hits.primitive.tolist() == [0, -1]
    assert hits.t[0] == pytest.approx(2.0)
    assert q.occluded(o, d, t_max=np.array([3.0, 1.5], np.float32)).tolist() == [True, False]


def nested_triangles(count: int) -> np.ndarray:
    """Triangles sharing a corner, each half the size of the last: SAH peels them off one
    or two at a time, the worst case for depth."""
    scale = 0.5 ** np.arange(count)[:, None, None]
    tri = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float64)
    return (tri[None] * scale).astype(np.float32)


def test_deep_input_fits_the_traversal_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    # Catches: a tree deeper than the traversal stack, whose extra subtrees the kernel
    # silently skipped (missing geometry). With the stack cut to 20 entries, 120 nested
    # triangles must still build within it.
    from renderer.accel import bvh as bvh_module

    tris = nested_triangles(120)  # 0.5^120 still a normal float32
    free = build_bvh(tris.min(axis=1), tris.max(axis=1), max_leaf_size=1)
    monkeypatch.setattr(bvh_module, "BVH_STACK_SIZE", 20)
    assert free.depth > 20  # the input is deep where nothing bounds it
    bounded = build_bvh(tris.min(axis=1), tris.max(axis=1), max_leaf_size=1)
    assert bounded.depth <= 20
    check_invariants(bounded, tris.min(axis=1), tris.max(axis=1))


def test_stack_size_matches_the_kernel() -> None:
    # Catches: the host's bound and the kernel's stack drifting apart.
    import re

    from conftest import REPO

    from renderer.accel.bvh import BVH_STACK_SIZE

    source = (REPO / "shaders" / "scene" / "geometry.slang").read_text()
    assert int(re.search(r"BVH_STACK_SIZE = (\d+);", source).group(1)) == BVH_STACK_SIZE
