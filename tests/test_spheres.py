"""Analytic spheres: exact ray hits, the joined BVH, the scene format, and rendering."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_mean_close, furnace_sphere_scene

from renderer.accel import SphereSet, TriangleQueries, build_bvh, join_bvhs
from renderer.errors import SceneError
from renderer.materials.texture import Texture
from renderer.render.light_selection import camera_receivers
from renderer.render.renderer import Renderer
from renderer.scene import Mesh, Sphere, load_scene
from renderer.scene.types import Camera


def closed_form_t(origin, direction, center, radius, t_min=0.0, t_max=np.inf) -> np.ndarray:
    """Nearest root of |o + t d - c| = r in (t_min, t_max), in float64; inf where none."""
    o = np.asarray(origin, np.float64) - np.asarray(center, np.float64)
    d = np.asarray(direction, np.float64)
    a = (d * d).sum(-1)
    b = (o * d).sum(-1)
    c = (o * o).sum(-1) - radius**2
    disc = b * b - a * c
    root = np.sqrt(np.maximum(disc, 0.0))
    t0, t1 = (-b - root) / a, (-b + root) / a
    t = np.where((t0 > t_min) & (t0 < t_max), t0, np.where((t1 > t_min) & (t1 < t_max), t1, np.inf))
    return np.where(disc >= 0, t, np.inf)


def sphere_queries(cpu, centers, radii, triangles=None) -> TriangleQueries:
    tris = np.zeros((0, 3, 3), np.float32) if triangles is None else triangles
    spheres = SphereSet(np.asarray(centers, np.float32), np.asarray(radii, np.float32))
    return TriangleQueries(cpu, tris, spheres=spheres)


@pytest.mark.parametrize(
    "case",
    ["outside", "inside", "grazing", "far_away", "small_and_far", "behind", "non_unit_direction"],
)
def test_sphere_hits_match_the_closed_form(cpu, case: str) -> None:
    # Catches: taking the near root when the origin is inside (the inside case hits the
    # back wall), the textbook b^2 - ac discriminant (a small sphere far away loses its
    # silhouette and t to cancellation: the far_away cases need the closest-approach
    # form to stay within 1e-6), a box bound that clips the silhouette (grazing), and a
    # root behind the origin reported as a hit.
    rng = np.random.default_rng(5)
    n = 2000
    center, radius = np.array([0.3, -0.2, 0.1]), 0.8
    if case == "outside":
        o = center + np.array([0, 0, 5.0])
        target = center + rng.uniform(-1, 1, (n, 3)) * radius
        d = target - o
    elif case == "inside":
        o = center + rng.uniform(-0.4, 0.4, (n, 3))
        d = rng.normal(size=(n, 3))
    elif case == "grazing":
        # Rays passing the centre at 1 -/+ 2e-5 radii: exactly half must hit.
        side = np.where(np.arange(n) % 2 == 0, 1 - 2e-5, 1 + 2e-5)
        phi = rng.uniform(0, 2 * np.pi, n)
        offset = np.stack([np.cos(phi), np.sin(phi), np.zeros(n)], 1) * (side * radius)[:, None]
        o = center + offset + np.array([0, 0, 3.0])
        d = np.tile([0.0, 0.0, -1.0], (n, 1))
    elif case == "far_away":
        o = center + np.array([0, 0, 1e4])
        d = center + rng.uniform(-1, 1, (n, 3)) * radius - o
    elif case == "small_and_far":
        radius = 1e-3
        o = center + np.array([40.0, 30.0, 80.0])
        d = center + rng.uniform(-1, 1, (n, 3)) * radius - o
    elif case == "behind":
        o = center + np.array([0, 0, 3.0])
        d = np.tile([0.0, 0.0, 1.0], (n, 1)) + rng.uniform(-0.1, 0.1, (n, 3))
    else:
        o = center + np.array([2.0, 0.5, 3.0])
        d = (center + rng.uniform(-1, 1, (n, 3)) * radius - o) * rng.uniform(1e-3, 1e3, (n, 1))
    o = np.broadcast_to(o, (n, 3)).astype(np.float32)
    d = d.astype(np.float32)
    hits = sphere_queries(cpu, [center], [radius]).closest_hit(o, d)
    expected = closed_form_t(o, d, center.astype(np.float32), np.float32(radius))
    # Rays passing near tangency may round either way in float32: within 1e-5 radii, or
    # within a few roundings of o - c (the box and sphere tests both start from it).
    o64, d64 = o.astype(np.float64) - center, d.astype(np.float64)
    along = (o64 * d64).sum(-1) / (d64 * d64).sum(-1)
    approach = np.linalg.norm(o64 - along[:, None] * d64, axis=1) / radius
    band = 1e-5 + 4 * 2.0**-24 * np.abs(o).max(axis=1) / radius
    clear = np.abs(approach - 1) > band
    assert clear.mean() > 0.95
    np.testing.assert_array_equal(hits.hit[clear], np.isfinite(expected)[clear])
    if case == "grazing":
        assert hits.hit.sum() == n // 2
    if case == "behind":
        assert not hits.hit.any()
    if case == "inside":
        assert hits.hit.all()
    ok = np.isfinite(expected) & clear
    if case == "grazing":
        # The root is ill-conditioned at a tangent (dt ~ d(disc) / 2 sqrt(disc)): float32
        # rounding of r^2 - |l|^2 alone moves t by ~1e-5 here, the chord is 5e-3 long.
        np.testing.assert_allclose(hits.t[ok], expected[ok], atol=3e-5)
    else:
        np.testing.assert_allclose(hits.t[ok], expected[ok], rtol=1e-6 if "far" in case else 2e-6)


def test_joined_bvh_finds_what_brute_force_finds(cpu) -> None:
    # Catches: the sphere tree's leaves or primitive order not offset past the triangles
    # (spheres tested as triangles, or hits reported as the wrong primitive), interior
    # nodes of either tree pointing at children that moved, and the root box not
    # covering both trees.
    rng = np.random.default_rng(11)
    tris = (rng.uniform(-3, 3, (300, 1, 3)) + rng.normal(scale=0.3, size=(300, 3, 3))).astype(
        np.float32
    )
    centers = rng.uniform(-3, 3, (120, 3))
    radii = rng.uniform(0.05, 0.4, 120)
    q = sphere_queries(cpu, centers, radii, tris)
    assert q.bvh.node_count > 3 and len(q.bvh.primitive_order) == 420
    o = rng.uniform(-5, 5, (4000, 3)).astype(np.float32)
    d = rng.normal(size=(4000, 3)).astype(np.float32)
    bvh_hits = q.closest_hit(o, d)
    brute = q.closest_hit_brute_force(o, d)
    np.testing.assert_array_equal(bvh_hits.primitive, brute.primitive)
    np.testing.assert_array_equal(bvh_hits.t, brute.t)
    on_sphere = bvh_hits.primitive >= 300
    assert on_sphere.sum() > 300 and (bvh_hits.hit & ~on_sphere).sum() > 300
    # Shadow rays see spheres and triangles alike.
    np.testing.assert_array_equal(q.occluded(o, d), brute.hit)


def test_join_keeps_each_tree_whole() -> None:
    # Catches: a join that reorders or drops primitives: every slot appears once, sphere
    # leaves lie at or after the triangle count, triangle leaves before it.
    rng = np.random.default_rng(2)
    lo = rng.uniform(-1, 1, (50, 3))
    a = build_bvh(lo, lo + 0.1, max_leaf_size=2)
    b = build_bvh(lo[:20] * 2, lo[:20] * 2 + 0.2, max_leaf_size=2)
    joined = join_bvhs(a, b)
    assert joined.node_count == a.node_count + b.node_count + 1
    assert sorted(joined.primitive_order.tolist()) == list(range(70))
    leaf = joined.primitive_count > 0
    starts, counts = joined.first_index[leaf].astype(int), joined.primitive_count[leaf].astype(int)
    slots = np.concatenate([np.arange(s, s + c) for s, c in zip(starts, counts, strict=True)])
    assert sorted(slots.tolist()) == list(range(70))
    assert all((s + c <= 50) or (s >= 50) for s, c in zip(starts, counts, strict=True))


def scene_dict(ball: dict, transform: dict | None = None, material: dict | None = None) -> dict:
    return {
        "version": 1,
        "camera": {"position": [0, 0, 4], "look_at": [0, 0, 0], "resolution": [8, 8]},
        "materials": {"m": material or {"type": "diffuse", "albedo": 0.5}},
        "meshes": {"ball": ball},
        "instances": [{"mesh": "ball", "material": "m", "transform": transform or {}}],
    }


def test_scene_format_chooses_analytic_spheres_unless_tessellated() -> None:
    # Catches: existing scenes that tessellate their spheres silently becoming analytic
    # (their images would change), and the default not being analytic.
    assert isinstance(load_scene(scene_dict({"type": "sphere"})).meshes["ball"], Sphere)
    tessellated = load_scene(scene_dict({"type": "sphere", "segments": 12, "rings": 6}))
    assert isinstance(tessellated.meshes["ball"], Mesh)
    explicit = load_scene(scene_dict({"type": "sphere", "analytic": False}))
    assert isinstance(explicit.meshes["ball"], Mesh)
    flipped = load_scene(scene_dict({"type": "sphere", "radius": 2, "flip_normals": True}))
    assert flipped.meshes["ball"] == Sphere(radius=2.0, flip_normals=True)
    mirrored = load_scene(
        scene_dict({"type": "sphere"}, {"scale": [-2, 2, 2], "rotate": [0, 40, 0]})
    )
    assert isinstance(mirrored.meshes["ball"], Sphere)


@pytest.mark.parametrize(
    "ball, transform, material, message",
    [
        ({"type": "sphere", "analytic": True, "segments": 8}, None, None, "'segments'"),
        ({"type": "sphere"}, {"scale": [1, 2, 1]}, None, "ellipsoid"),
        ({"type": "sphere", "radius": -1}, None, None, "radius"),
    ],
)
def test_bad_analytic_spheres_are_refused(ball, transform, material, message) -> None:
    with pytest.raises(SceneError, match=message):
        load_scene(scene_dict(ball, transform, material))


def analytic_furnace(**kwargs) -> dict:
    scene = furnace_sphere_scene(**kwargs)
    scene["meshes"]["ball"] = {"type": "sphere"}
    return scene


@pytest.fixture(scope="module")
def furnace(cpu) -> Renderer:
    return Renderer(load_scene(analytic_furnace(spp=64)), cpu)


@pytest.mark.parametrize("strategy", ["mis", "bsdf"])
def test_analytic_sphere_in_white_furnace(furnace: Renderer, strategy: str) -> None:
    # Catches: rays leaving the sphere that hit it again (a root behind the origin, below
    # t_min, taken; or the origin offset missing): a convex body never sees itself, so
    # albedo 0.5 under radiance 1 reflects exactly 0.5, and a self-hit darkens it.
    result = furnace.render(strategy=strategy, max_depth=5)
    on_sphere = result.albedo[..., 0] == np.float32(0.5)
    assert on_sphere.sum() > 200
    assert_mean_close(result.radiance[on_sphere], result.variance[on_sphere], 0.5)


def test_analytic_sphere_textures_like_the_tessellated_one(cpu) -> None:
    # Catches: a uv convention that differs from the tessellated sphere's (u mirrored or
    # shifted, v upside down): through a texture whose red is u and green is v, both
    # spheres must show the same colours wherever a pixel is inside both silhouettes.
    # (Checkers are symmetric under some of these mistakes; a ramp is not.)
    w, h = 64, 32
    u = (np.arange(w) + 0.5) / w
    v = 1.0 - (np.arange(h) + 0.5) / h  # image rows run from v = 1 down to v = 0
    ramp = np.stack(np.broadcast_arrays(u[None, :], v[:, None], np.zeros((h, w))), -1)

    def render(ball: dict):
        scene = analytic_furnace(resolution=48, spp=4)
        scene["meshes"]["ball"] = ball
        scene["instances"][0]["transform"] = {"rotate": [20, 35, 0]}
        loaded = load_scene(scene)
        loaded.materials["grey"].albedo = Texture(kind="image", image=ramp.astype(np.float32))
        return Renderer(loaded, cpu).render(max_depth=1)

    exact = render({"type": "sphere"})
    mesh = render({"type": "sphere", "segments": 512, "rings": 256})
    # inside both silhouettes, away from the u seam (where bilinear lookups wrap 1 to 0)
    red = exact.albedo[..., 0]
    inside = (exact.depth > 0) & (mesh.depth > 0) & (red > 0.05) & (red < 0.95)
    assert inside.sum() > 500
    difference = np.abs(exact.albedo[inside] - mesh.albedo[inside])[:, :2].max(axis=-1)
    # The same camera samples meet both spheres within the tessellation's 2e-5 radii;
    # pixels on the silhouette average different sample sets, hence the 2% allowed.
    assert np.quantile(difference, 0.98) < 0.01, np.quantile(difference, [0.5, 0.98])


def test_receivers_on_spheres_get_sphere_normals(cpu) -> None:
    # Catches: light selection reading a triangle's normal for a sphere hit (spheres'
    # input indices follow the triangles'): receivers on the sphere must carry (p - c) / r.
    centers = np.array([[0.0, 0.0, 0.0]], np.float32)
    spheres = SphereSet(centers, np.array([1.0], np.float32))
    tris = np.array([[[-9, -1.5, -9], [9, -1.5, -9], [0, -1.5, 9]]], np.float32)
    queries = TriangleQueries(cpu, tris, spheres=spheres)
    camera = Camera(
        np.array([0.0, 0.5, 5.0]), np.array([0.0, 0.0, 0.0]), fov=50, resolution=(32, 24)
    )
    receivers = camera_receivers(camera, queries, tris, spheres=spheres)
    on_sphere = np.abs(np.linalg.norm(receivers.points, axis=1) - 1) < 1e-4
    assert on_sphere.sum() > 10 and (~on_sphere).sum() > 10
    np.testing.assert_allclose(receivers.normals[on_sphere], receivers.points[on_sphere], atol=1e-4)


@pytest.mark.parametrize("strategy", ["mis", "nee", "bsdf"])
def test_inside_an_emissive_analytic_sphere(cpu, strategy: str) -> None:
    # Catches: the far root not taken from inside (rays escape the room), flip_normals
    # not turning the front face inwards (the walls would not emit towards the camera),
    # and a wrong pdf for sampling points on a sphere (NEE and MIS): with Le = 0.5 and
    # albedo 0.5, every bounce sees the same radiance, 1 - 0.5^13 with 12 bounces.
    from test_integrator import enclosure

    scene = enclosure(0.5, 0.5, max_depth=12, rr_depth=3, size=16)
    scene.meshes["room"] = Sphere(radius=1.0, flip_normals=True)
    result = Renderer(scene, cpu).render(strategy=strategy)
    assert_mean_close(result.radiance, result.variance, 1.0 - 0.5**13)


def lamp_scene(lamp: dict, spp: int, height: float = 0.8) -> dict:
    """A ground lit by a small emissive sphere only (no environment)."""
    return {
        "version": 1,
        "camera": {"position": [0, 2, 4], "look_at": [0, 0, 0], "fov": 50, "resolution": [24, 18]},
        "integrator": {"spp": spp, "max_depth": 2, "seed": 9},
        "materials": {
            "ground": {"type": "diffuse", "albedo": 0.7},
            "lamp": {"type": "diffuse", "albedo": 0.0, "emission": [6.0, 5.0, 4.0]},
        },
        "meshes": {"ground": {"type": "plane", "size": [6, 6]}, "lamp": lamp},
        "instances": [
            {"mesh": "ground", "material": "ground"},
            {"mesh": "lamp", "material": "lamp", "transform": {"translate": [0.3, height, 0.2]}},
        ],
    }


def banded_emission() -> Texture:
    """Dark at the poles, bright at the equator (a v gradient): the sphere's point sampling
    must land where the pdf says, or the bands it favours bias the light."""
    v = (np.arange(16) + 0.5) / 16
    rows = np.sin(np.pi * v[::-1]) ** 4  # image rows run from v = 1 down to v = 0
    return Texture(kind="image", image=np.repeat(rows[:, None, None], 3, axis=2).astype(np.float32))


def lamp_render(cpu, lamp: dict, textured: bool, **kwargs):
    # The banded lamp hangs higher: from the ground its cone is narrow while the cap it
    # shows is nearly a hemisphere, poles and equator alike.
    scene = load_scene(lamp_scene(lamp, spp=64, height=1.4 if textured else 0.8))
    if textured:
        scene.materials["lamp"].emission_texture = banded_emission()
    return Renderer(scene, cpu).render(**kwargs)


@pytest.mark.parametrize("radius, textured", [(0.15, False), (0.5, False), (0.3, True)])
def test_sphere_lamp_light_sampling_agrees_with_bsdf_sampling(
    cpu, radius: float, textured: bool
) -> None:
    # Catches: a wrong solid-angle pdf for the cone a sphere lamp subtends (e.g. pi for
    # 2 pi), points sampled off the cone's uniform directions (the banded lamp shows it:
    # points that drift towards its dark pole or bright equator change the light found),
    # or the sphere lamp's emitter record mixed up with the triangles': next-event
    # estimation alone must give the ground the light BSDF sampling alone finds, and a
    # finely tessellated lamp the same (0.2% allowed for its tessellation; the facets
    # measured 0.013% on a 4k-triangle sphere).
    lamp = {"type": "sphere", "radius": radius}
    nee = lamp_render(cpu, lamp, textured, strategy="nee")
    bsdf = lamp_render(cpu, lamp, textured, strategy="bsdf", spp=256)
    ground = (nee.depth > 0) & (nee.albedo[..., 0] == np.float32(0.7))
    assert ground.sum() > 200
    a, b = nee.radiance[ground].mean(), bsdf.radiance[ground].mean()
    se = (
        np.sqrt(nee.variance[ground].sum() + bsdf.variance[ground].sum())
        / nee.variance[ground].size
    )
    assert abs(a - b) < 5 * se, (a, b, se)
    mesh_lamp = {**lamp, "segments": 256, "rings": 128}
    mesh = lamp_render(cpu, mesh_lamp, textured, strategy="nee")
    c = mesh.radiance[ground].mean()
    se_c = (
        np.sqrt(nee.variance[ground].sum() + mesh.variance[ground].sum())
        / nee.variance[ground].size
    )
    assert abs(a - c) < 5 * se_c + 2e-3 * c, (a, c, se_c)


def test_sphere_lamp_beside_a_quad_lamp(cpu) -> None:
    # Catches: sphere emitters' records or indices mixed up with the triangles' (a sphere
    # slot not offset past the triangles, or its emitter index not offset past the
    # emissive triangles: light sampling then picks the wrong light, or weighs it by the
    # wrong pmf, or MIS weighs a hit on the sphere by the wrong light's pdf): with a quad
    # lamp and a sphere lamp, the render must equal the one where the sphere is a finely
    # tessellated mesh (triangle emitters only; within its 0.2% tessellation error). The
    # planted mix-ups moved the ground's mean by 12% and 28%, over 10 standard errors.
    def render(lamp: dict):
        scene = lamp_scene(lamp, spp=1024)
        scene["materials"]["panel"] = {
            "type": "diffuse",
            "albedo": 0.0,
            "emission": [2.0, 3.0, 4.0],
        }
        scene["meshes"]["panel"] = {"type": "plane", "size": [0.6, 0.4]}
        place = {"translate": [-0.8, 1.0, -0.3], "rotate": [180.0, 0.0, 0.0]}
        scene["instances"].append({"mesh": "panel", "material": "panel", "transform": place})
        return Renderer(load_scene(scene), cpu).render(strategy="mis")

    exact = render({"type": "sphere", "radius": 0.4})
    mesh = render({"type": "sphere", "radius": 0.4, "segments": 128, "rings": 64})
    ground = (exact.depth > 0) & (exact.albedo[..., 0] == np.float32(0.7))
    a, b = exact.radiance[ground].mean(), mesh.radiance[ground].mean()
    se = (
        np.sqrt(exact.variance[ground].sum() + mesh.variance[ground].sum())
        / exact.variance[ground].size
    )
    assert abs(a - b) < 5 * se + 2e-3 * b, (a, b, se)


def test_light_selection_sees_sphere_lamps(cpu) -> None:
    # Catches: light selection's stand-in triangles for a sphere lamp lying inside the
    # sphere, so that its own surface blocks every shadow ray to them and the lamp seems
    # dark (the environment then gets nearly every sample). A sphere lamp must get the
    # same share as the same lamp tessellated, and a scene of spheres only (no triangle
    # at all) must load.
    def p_env(lamp: dict, ground: bool = True) -> float:
        scene = lamp_scene(lamp, spp=1)
        scene["environment"] = {"type": "constant", "radiance": 0.05}
        if not ground:
            scene["meshes"]["ground"] = {"type": "sphere", "radius": 3.0}
            scene["instances"][0]["transform"] = {"translate": [0.0, -3.0, 0.0]}
        return Renderer(load_scene(scene), cpu).buffers.stats.environment_probability

    exact = p_env({"type": "sphere", "radius": 0.15})
    mesh = p_env({"type": "sphere", "radius": 0.15, "segments": 64, "rings": 32})
    assert abs(exact - mesh) < 0.02, (exact, mesh)
    spheres_only = p_env({"type": "sphere", "radius": 0.15}, ground=False)
    mesh_lamp = p_env({"type": "sphere", "radius": 0.15, "segments": 64, "rings": 32}, False)
    assert abs(spheres_only - mesh_lamp) < 0.02, (spheres_only, mesh_lamp)
