"""The shipped material library: every material loads with textures of at least 512x512,
evaluates to finite, energy-bounded values through the batched API, samples consistently,
and renders as a preview; glTF metallic-roughness materials map onto the lobes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bsdf_checks import direction, repeat

from renderer.device import RenderDevice
from renderer.errors import NrenderError
from renderer.materials import MaterialQueries, Mix, Stack, evaluate, load_material, pdf, sample
from renderer.paths import materials_dir
from renderer.render import Renderer
from renderer.scene import load_scene

LIBRARY = sorted(materials_dir().glob("*.json"))
REQUIRED = {
    "glazed_ceramic",
    "brass_verdigris",
    "car_paint",
    "coated_plastic",
    "leather",
    "scratched_gold",
}


def test_library_has_the_promised_materials() -> None:
    assert {p.stem for p in LIBRARY} >= REQUIRED


@pytest.mark.parametrize("path", LIBRARY, ids=[p.stem for p in LIBRARY])
def test_library_material_is_sound(cpu: RenderDevice, path: Path) -> None:
    graph = load_material(path)
    images = [t.image for t in graph.textures.values() if t.kind == "image"]
    assert images and all(min(i.shape[:2]) >= 512 for i in images)
    q = MaterialQueries(graph, cpu)
    n = 4000
    rng = np.random.default_rng(0)
    uv = rng.random((n, 2))
    for angle in (10.0, 50.0, 80.0):
        wo = repeat(direction(angle, 30.0), n)
        wi, weight, p, delta = q.sample(uv, wo, seed=3)
        assert np.isfinite(weight).all() and (weight >= 0).all()
        albedo = weight.mean(axis=0)
        se = weight.std(axis=0) / np.sqrt(n)
        assert (albedo <= 1.01 + 4 * se).all(), f"albedo {albedo} at {angle} degrees"
        assert (albedo > 0.005).all()
        ok = (p > 0) & ~delta
        # Query i picks its mix branch from stream i: query the whole batch again.
        np.testing.assert_allclose(q.pdf(uv, wi, wo, seed=3)[ok], p[ok], rtol=1e-3)
        f = q.evaluate(uv, wi, wo, samples=2)
        assert np.isfinite(f).all() and (f >= 0).all()


def test_module_level_api_matches_the_queries_object(
    cpu: RenderDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph = load_material(materials_dir() / "coated_plastic.json")
    n = 256
    rng = np.random.default_rng(1)
    uv, wo = rng.random((n, 2)), repeat(direction(40.0), n)
    wi, weight, p, _ = sample(graph, uv, wo, seed=4, device=cpu)
    q = MaterialQueries(graph, cpu)
    np.testing.assert_array_equal(q.sample(uv, wo, seed=4)[1], weight)
    np.testing.assert_array_equal(pdf(graph, uv, wi, wo, seed=4, device=cpu), p)
    np.testing.assert_array_equal(
        evaluate(graph, uv, wi, wo, samples=3, seed=5, device=cpu),
        q.evaluate(uv, wi, wo, samples=3, seed=5),
    )
    # However a batch is split into dispatches, query i draws from stream i.
    whole = q.evaluate(uv, wi, wo, samples=3, seed=5)
    import renderer.materials.api as api

    monkeypatch.setattr(api, "MAX_QUERIES_PER_DISPATCH", 100)
    np.testing.assert_array_equal(q.evaluate(uv, wi, wo, samples=3, seed=5), whole)
    with pytest.raises(NrenderError, match=r"wo: expected shape \[256, 3\]"):
        q.evaluate(uv, wi, wo[:10])
    with pytest.raises(NrenderError, match=r"wi: contains NaN"):
        q.evaluate(uv, np.full_like(wi, np.nan), wo)
    with pytest.raises(
        NrenderError, match=r"wo: directions must be unit vectors; row 0 has length 2"
    ):
        q.evaluate(uv, wi, wo * 2)
    with pytest.raises(NrenderError, match=r"uv: expected shape \[N, 2\]"):
        q.evaluate(uv[:, :1], wi, wo)


def test_library_preview_renders(cpu: RenderDevice) -> None:
    scene = load_scene(materials_dir() / "car_paint.json")
    scene.camera.resolution = (24, 18)
    result = Renderer(scene, cpu).render(spp=2, seed=1)
    assert np.isfinite(result.radiance).all()
    centre = result.radiance[6:12, 9:15].mean(axis=(0, 1))
    assert centre[0] > centre[1]  # the red paint shows


def test_gltf_metallic_roughness_maps_onto_lobes(tmp_path: Path, cpu: RenderDevice) -> None:
    trimesh = pytest.importorskip("trimesh")
    from trimesh.visual.material import PBRMaterial

    meshes = []
    for i, metallic in enumerate((0.0, 1.0, 0.5)):
        sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.4)
        sphere.apply_translation([i * 1.0 - 1.0, 0.0, 0.0])
        sphere.visual = trimesh.visual.TextureVisuals(
            material=PBRMaterial(
                name=f"m{i}",
                baseColorFactor=[0.9, 0.6, 0.2, 1.0],
                metallicFactor=metallic,
                roughnessFactor=0.4,
            )
        )
        meshes.append(sphere)
    path = tmp_path / "spheres.glb"
    trimesh.Scene(meshes).export(path)
    scene = load_scene(path)
    roots = {}
    for material in scene.materials.values():
        assert material.kind == "layered"
        root = material.graph.root
        roots[type(root).__name__ if isinstance(root, Mix) else root.lobes[0].type] = root
    assert set(roots) == {"diffuse", "conductor", "Mix"}
    coated = roots["diffuse"]
    assert isinstance(coated, Stack) and coated.layers[0].ior == 1.5
    assert coated.layers[0].roughness.value[0] == pytest.approx(0.4)
    scene.camera.resolution = (24, 12)
    result = Renderer(scene, cpu).render(spp=2)
    assert np.isfinite(result.radiance).all() and result.radiance.mean() > 0
