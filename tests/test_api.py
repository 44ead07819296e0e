"""The Python API a researcher scripts against mirrors the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import REPO, furnace_sphere_scene

import renderer as nr
from renderer.image_io import read_image


def test_dict_in_numpy_out(cpu, tmp_path: Path) -> None:
    scene = nr.load_scene(furnace_sphere_scene(resolution=16, spp=2))
    result = nr.render(scene, device="cpu", spp=3, seed=4)
    assert result.radiance.shape == (16, 16, 3) and result.radiance.dtype == np.float32
    assert result.spp == 3 and result.info["seed"] == 4
    written = result.write_outputs(tmp_path / "sphere")
    assert [p.name for p in written] == ["sphere.exr", "sphere.png"]
    assert read_image(written[0]).shape == (16, 16, 3)


def test_progress_callback_and_reload(cpu) -> None:
    scene = nr.load_scene(furnace_sphere_scene(resolution=8, spp=2))
    renderer = nr.Renderer(scene, device=cpu)
    calls: list[tuple[int, int]] = []
    renderer.render(spp=5, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (5, 5)
    # Changing a material needs reload(); afterwards the render sees it.
    before = renderer.render(spp=4, seed=1).radiance
    scene.materials["grey"].albedo.value = np.array([0.25, 0.25, 0.25])
    renderer.reload()
    after = renderer.render(spp=4, seed=1).radiance
    assert after.sum() < before.sum()


def test_default_scene_from_python(cpu) -> None:
    scene = nr.load_scene(REPO / "scenes" / "default")
    scene.camera.resolution = (24, 16)
    result = nr.Renderer(scene, cpu).render(spp=1)
    assert result.radiance.shape == (16, 24, 3) and result.radiance.std() > 0


def test_render_gltf_scene(cpu, tmp_path: Path) -> None:
    import trimesh

    tm_scene = trimesh.Scene()
    tm_scene.add_geometry(trimesh.creation.icosphere(subdivisions=2), node_name="ball")
    tm_scene.export(tmp_path / "ball.glb")
    scene = nr.load_scene(tmp_path / "ball.glb")  # no camera in the file: one frames the scene
    scene.camera.resolution = (16, 12)
    result = nr.Renderer(scene, cpu).render(spp=2)
    h, w = result.depth.shape
    assert result.depth[h // 2, w // 2] > 0 and result.depth[0, 0] == 0


def test_mirrored_instances_keep_normals_outward() -> None:
    from renderer.render.scene_buffers import flatten_instances

    for smooth in (True, False):
        scene = nr.load_scene(
            {
                "version": 1,
                "camera": {"position": [0, 0, 4], "look_at": [0, 0, 0]},
                "materials": {"m": {"type": "diffuse"}},
                "meshes": {"s": {"type": "sphere", "smooth": smooth, "segments": 12, "rings": 6}},
                "instances": [{"mesh": "s", "material": "m", "transform": {"scale": [-1, 1, 1]}}],
            }
        )
        tris = flatten_instances(scene, {"m": 0})
        p = tris.vertices.astype(np.float64)
        geometric = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
        centroid = p.mean(axis=1)
        assert (np.einsum("ij,ij->i", geometric, centroid) > 0).all(), "winding points outward"
        shading = tris.normals.astype(np.float64).mean(axis=1)
        assert (np.einsum("ij,ij->i", shading, centroid) > 0).all(), "shading normals outward"
