"""Scene format v1: files and dicts load alike, every key is documented, bad input fails clearly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, record_read_keys

from renderer import SceneError, load_scene
from renderer.image_io import write_exr, write_ldr

MINIMAL = {
    "version": 1,
    "camera": {"position": [0, 0, 3], "look_at": [0, 0, 0]},
    "materials": {"m": {"type": "diffuse"}},
    "meshes": {"s": {"type": "sphere"}},
    "instances": [{"mesh": "s", "material": "m"}],
}


def write_scene(tmp_path: Path, scene: dict | str, name: str = "scene.json") -> Path:
    path = tmp_path / name
    path.write_text(scene if isinstance(scene, str) else json.dumps(scene))
    return path


def kitchen_sink(tmp_path: Path) -> dict:
    """A scene that sets every key the format has."""
    import trimesh

    trimesh.creation.box().export(tmp_path / "cube.obj")
    write_ldr(tmp_path / "wood.png", np.full((4, 4, 3), 128, np.uint8))
    write_exr(tmp_path / "studio.exr", {"RGB": np.ones((8, 16, 3), np.float32)})
    return {
        "version": 1,
        "camera": {
            "type": "perspective",
            "position": [0, 1, 4],
            "look_at": [0, 0, 0],
            "up": [0, 1, 0],
            "fov": 35,
            "resolution": [64, 48],
        },
        "integrator": {"spp": 4, "max_depth": 3, "seed": 9, "rr_depth": 2, "strategy": "nee"},
        "environment": {
            "type": "sky",
            "scale": 0.5,
            "rotation": 10,
            "zenith": [0.1, 0.2, 0.5],
            "horizon": 0.8,
            "ground": 0.2,
            "sun_direction": [0, 1, 1],
            "sun_radiance": 500,
            "sun_angle": 4,
            "resolution": [64, 32],
        },
        "materials": {
            "const": {
                "type": "diffuse",
                "albedo": {"type": "constant", "value": [0.2, 0.3, 0.4]},
                "emission": [0, 0, 0],
            },
            "img": {
                "type": "diffuse",
                "albedo": {"type": "image", "path": "wood.png", "srgb": True, "scale": [2, 3]},
            },
            "check": {
                "type": "diffuse",
                "albedo": {"type": "checker", "colors": [0.9, 0.1], "scale": 4},
            },
        },
        "meshes": {
            "file": {"type": "file", "path": "cube.obj", "smooth": False, "flip_normals": False},
            "sphere": {"type": "sphere", "radius": 0.5, "segments": 12, "rings": 6, "smooth": True},
            "plane": {"type": "plane", "size": [2, 3]},
            "box": {"type": "box", "size": [1, 2, 3]},
            "cyl": {
                "type": "cylinder",
                "radius": 0.3,
                "height": 1,
                "segments": 12,
                "caps": True,
                "smooth": False,
            },
            "torus": {
                "type": "torus",
                "major_radius": 1,
                "minor_radius": 0.2,
                "segments": 12,
                "rings": 6,
                "smooth": True,
            },
        },
        "instances": [
            {
                "mesh": "file",
                "material": "const",
                "transform": {"matrix": [[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]},
            },
            {
                "mesh": "sphere",
                "material": "img",
                "transform": {"translate": [0, 1, 0], "rotate": [0, 45, 0], "scale": 2},
            },
            {"mesh": "plane", "material": "check"},
            {"mesh": "box", "material": "const", "transform": {"scale": [1, 2, 1]}},
            {"mesh": "cyl", "material": "const"},
            {"mesh": "torus", "material": "const"},
        ],
    }


def test_file_and_dict_load_alike(tmp_path: Path) -> None:
    data = kitchen_sink(tmp_path)
    from_file = load_scene(write_scene(tmp_path, data))
    from_dict = load_scene(data, base_dir=tmp_path)
    assert from_file.triangle_count == from_dict.triangle_count > 0
    for a, b in zip(from_file.instances, from_dict.instances, strict=True):
        np.testing.assert_array_equal(a.transform, b.transform)
    assert from_file.integrator == from_dict.integrator
    np.testing.assert_array_equal(from_file.environment.radiance, from_dict.environment.radiance)
    assert from_file.source == tmp_path / "scene.json"


def test_every_key_is_documented(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    read = record_read_keys(monkeypatch)
    load_scene(kitchen_sink(tmp_path), base_dir=tmp_path)
    doc = (REPO / "scenes" / "README.md").read_text()
    missing = sorted(k for k in read if f"`{k}`" not in doc)
    assert not missing, f"keys read by the loader but not documented in scenes/README.md: {missing}"
    assert len(read) > 40


def test_defaults() -> None:
    scene = load_scene(MINIMAL)
    assert scene.camera.fov == 40 and scene.camera.resolution == (640, 480)
    assert scene.integrator.spp == 64 and scene.integrator.strategy == "mis"
    assert scene.environment.is_black


def test_default_scene_loads() -> None:
    scene = load_scene(REPO / "scenes" / "default")
    assert scene.triangle_count > 1000
    assert any(m.is_emissive for m in scene.materials.values())


def broken(key_path: list, value) -> dict:
    data = json.loads(json.dumps(MINIMAL))
    node = data
    for k in key_path[:-1]:
        node = node[k]
    if value is KeyError:
        del node[key_path[-1]]
    else:
        node[key_path[-1]] = value
    return data


BROKEN = [
    ("unknown top-level key", broken(["camra"], {}), ["camra", "unknown"]),
    ("misspelt camera key", broken(["camera", "fvo"], 30), ["camera.fvo", "unknown"]),
    (
        "key unused by the shape type",
        broken(["meshes", "s", "size"], [1, 1]),
        ["meshes.s.size", "unused"],
    ),
    (
        "zero resolution",
        broken(["camera", "resolution"], [0, 480]),
        ["camera.resolution", "[1, 16384]"],
    ),
    ("absurd resolution", broken(["camera", "resolution"], [100000, 10]), ["camera.resolution"]),
    ("absurd pixel count", broken(["camera", "resolution"], [16384, 16384]), ["64 Mpixel"]),
    ("unsupported version", broken(["version"], 2), ["version", "unsupported scene version 2"]),
    ("missing version", broken(["version"], KeyError), ["version", "required"]),
    ("fov out of range", broken(["camera", "fov"], 180), ["camera.fov", "(0, 180)"]),
    ("fov wrong type", broken(["camera", "fov"], "wide"), ["camera.fov", "expected a number"]),
    ("camera looks at itself", broken(["camera", "look_at"], [0, 0, 3]), ["camera.look_at"]),
    (
        "unused material",
        broken(["materials", "spare"], {"type": "diffuse"}),
        ["materials.spare", "no instance"],
    ),
    (
        "unknown mesh reference",
        broken(["instances", 0, "mesh"], "cube"),
        ["instances[0].mesh", "'cube'"],
    ),
    (
        "unknown material type",
        broken(["materials", "m", "type"], "glass"),
        ["materials.m.type", "'diffuse'"],
    ),
    (
        "albedo above one",
        broken(["materials", "m", "albedo"], [1.5, 0, 0]),
        ["materials.m.albedo", "<= 1"],
    ),
    (
        "checker colour above one",
        broken(["materials", "m", "albedo"], {"type": "checker", "colors": [0.5, 2]}),
        ["materials.m.albedo", "<= 1"],
    ),
    (
        "negative emission",
        broken(["materials", "m", "emission"], -1),
        ["materials.m.emission", ">= 0"],
    ),
    (
        "singular transform",
        broken(["instances", 0, "transform"], {"scale": 0}),
        ["instances[0].transform", "singular"],
    ),
    (
        "bad matrix",
        broken(["instances", 0, "transform"], {"matrix": [[1, 0, 0, 0]] * 4}),
        ["instances[0].transform.matrix", "last row"],
    ),
    ("zero sphere radius", broken(["meshes", "s", "radius"], 0), ["meshes.s.radius"]),
    ("too many segments", broken(["meshes", "s", "segments"], 10**6), ["meshes.s.segments"]),
    (
        "unknown strategy",
        broken(["integrator"], {"strategy": "bdpt"}),
        ["integrator.strategy", "'mis'"],
    ),
    ("instances not a list", broken(["instances"], {}), ["instances", "expected a list"]),
]


@pytest.mark.parametrize("case, data, needles", BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_scene_dicts(tmp_path: Path, case: str, data: dict, needles: list[str]) -> None:
    path = write_scene(tmp_path, data)
    with pytest.raises(SceneError) as info:
        load_scene(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert "\n" not in message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


def test_invalid_json(tmp_path: Path) -> None:
    path = write_scene(tmp_path, '{"version": 1, "camera": {"position": [0, 0, 1],}')
    with pytest.raises(SceneError, match=r"scene\.json: invalid JSON at line 1, column \d+"):
        load_scene(path)


def test_non_finite_transform(tmp_path: Path) -> None:
    text = json.dumps(MINIMAL).replace(
        '"instances": [{"mesh": "s", "material": "m"}]',
        '"instances": [{"mesh": "s", "material": "m", "transform": {"translate": [0, NaN, 0]}}]',
    )
    with pytest.raises(
        SceneError, match=r"instances\[0\]\.transform\.translate: item 1 must be finite"
    ):
        load_scene(write_scene(tmp_path, text))


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(SceneError, match="scene file not found"):
        load_scene(tmp_path / "nope.json")
    data = broken(["meshes", "s"], {"type": "file", "path": "missing.obj"})
    with pytest.raises(SceneError, match=r"meshes\.s\.path: mesh file not found: .*missing\.obj"):
        load_scene(write_scene(tmp_path, data))
    data = broken(["materials", "m", "albedo"], {"type": "image", "path": "missing.png"})
    with pytest.raises(
        SceneError, match=r"materials\.m\.albedo\.path: .*missing\.png: image file not found"
    ):
        load_scene(write_scene(tmp_path, data))


def test_mesh_with_nan_vertex(tmp_path: Path) -> None:
    (tmp_path / "nan.obj").write_text("v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n")
    data = broken(["meshes", "s"], {"type": "file", "path": "nan.obj"})
    with pytest.raises(SceneError, match=r"scene\.json: meshes\.s\.path: .*nan\.obj: mesh has NaN"):
        load_scene(write_scene(tmp_path, data))


def test_unreadable_mesh_file(tmp_path: Path) -> None:
    (tmp_path / "junk.ply").write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 99\n"
    )
    data = broken(["meshes", "s"], {"type": "file", "path": "junk.ply"})
    with pytest.raises(SceneError, match=r"junk\.ply"):
        load_scene(write_scene(tmp_path, data))


def test_corrupt_and_non_finite_environment_maps(tmp_path: Path) -> None:
    (tmp_path / "sky.exr").write_bytes(b"v/1\x01" + b"\x00garbage" * 20)
    data = broken(["environment"], {"type": "map", "path": "sky.exr"})
    with pytest.raises(
        SceneError, match=r"environment\.path: .*sky\.exr: not a readable OpenEXR file"
    ):
        load_scene(write_scene(tmp_path, data))
    bad = np.ones((4, 8, 3), np.float32)
    bad[1, 2, 0] = np.inf
    write_exr(tmp_path / "inf.exr", {"RGB": bad})
    data = broken(["environment"], {"type": "map", "path": "inf.exr"})
    with pytest.raises(SceneError, match=r"inf\.exr: 1 pixels are NaN or infinite"):
        load_scene(write_scene(tmp_path, data))


def test_mesh_file_and_gltf_scene(tmp_path: Path) -> None:
    import trimesh
    from PIL import Image

    box = trimesh.creation.box(extents=[1, 2, 1])
    box.visual = trimesh.visual.TextureVisuals(
        uv=np.random.default_rng(0).random((len(box.vertices), 2)),
        material=trimesh.visual.material.PBRMaterial(
            baseColorFactor=[0.5, 0.25, 1.0, 1.0],
            emissiveFactor=[0.0, 0.0, 0.0],
            baseColorTexture=Image.fromarray(np.full((2, 2, 3), 255, np.uint8)),
        ),
    )
    tm_scene = trimesh.Scene()
    tm_scene.add_geometry(
        box, node_name="box", transform=trimesh.transformations.translation_matrix([2, 0, 0])
    )
    tm_scene.camera = trimesh.scene.Camera(fov=(60, 45), resolution=(640, 480))
    tm_scene.camera_transform = trimesh.transformations.translation_matrix([0, 0, 5])
    tm_scene.export(tmp_path / "scene.glb")

    scene = load_scene(tmp_path / "scene.glb")
    assert scene.triangle_count == 12
    np.testing.assert_allclose(scene.instances[0].transform[:3, 3], [2, 0, 0])
    assert scene.camera.fov == pytest.approx(45)
    np.testing.assert_allclose(scene.camera.position, [0, 0, 5])
    material = next(iter(scene.materials.values()))
    # glTF's default metallic factor is 1: a conductor whose reflectivity is the base colour.
    (stack,) = material.graph.stacks()
    base = stack.lobes[0]
    assert base.type == "conductor" and base.color.kind == "image"
    np.testing.assert_allclose(base.color.image[0, 0], [0.5, 0.25, 1.0], atol=0.01)
    assert not scene.environment.is_black

    box.export(tmp_path / "box.obj")
    data = broken(["meshes", "s"], {"type": "file", "path": "box.obj"})
    assert load_scene(write_scene(tmp_path, data)).triangle_count == 12


def test_gltf_base_colour_texture_without_a_factor(tmp_path: Path) -> None:
    # Catches: a glTF material with a baseColorTexture but no baseColorFactor (whose
    # default is white) read as an OBJ material and rendered flat grey.
    import trimesh
    from PIL import Image

    box = trimesh.creation.box()
    box.visual = trimesh.visual.TextureVisuals(
        uv=np.random.default_rng(1).random((len(box.vertices), 2)),
        material=trimesh.visual.material.PBRMaterial(
            baseColorTexture=Image.fromarray(np.full((4, 4, 3), [200, 30, 30], np.uint8))
        ),
    )
    trimesh.Scene(box).export(tmp_path / "red.glb")
    material = next(iter(load_scene(tmp_path / "red.glb").materials.values()))
    (stack,) = material.graph.stacks()
    colour = stack.lobes[0].color
    assert colour.kind == "image"
    # sRGB 200 and 30, decoded: the texture as it is, times a white factor
    np.testing.assert_allclose(colour.image[0, 0], [0.5776, 0.0130, 0.0130], atol=1e-3)


def test_mesh_files_keep_their_own_vertex_normals(tmp_path) -> None:
    # Catches: authored vertex normals replaced by ones recomputed from the faces (trimesh's
    # force="mesh" loading, and its Scene.to_mesh for multi-part files, do that), which
    # flattens every smooth-shaded mesh made elsewhere; and normals of a glTF node not
    # turned with its transform.
    import trimesh

    from renderer.scene.mesh_io import load_mesh_file

    a, b = [0.6, 0, 0.8], [0, 0.6, 0.8]
    (tmp_path / "tri.obj").write_text(
        "v 0 0 0\nv 1 0 0\nv 0 1 0\nvn 0.6 0 0.8\nvn 0 0.6 0.8\nf 1//1 2//2 3//1\n"
    )
    mesh = load_mesh_file(tmp_path / "tri.obj")
    np.testing.assert_allclose(mesh.normals, [a, b, a])
    # Two materials: trimesh returns a Scene of two parts.
    (tmp_path / "two.mtl").write_text("newmtl a\nKd 1 0 0\nnewmtl b\nKd 0 1 0\n")
    (tmp_path / "two.obj").write_text(
        "mtllib two.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nvn 0.6 0 0.8\nvn 0 0.6 0.8\n"
        "usemtl a\nf 1//1 2//2 3//1\nusemtl b\nf 2//2 4//2 3//1\n"
    )
    mesh = load_mesh_file(tmp_path / "two.obj")
    expected = {(0, 0): a, (1, 0): b, (0, 1): a, (1, 1): b}  # by vertex position
    for p, n in zip(mesh.positions, mesh.normals, strict=True):
        np.testing.assert_allclose(n, expected[(round(p[0]), round(p[1]))], atol=1e-6)
    # A glTF node turned by 90 degrees about z turns its normals with it.
    part = trimesh.Trimesh(
        [[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]], vertex_normals=[a, b, a], process=False
    )
    scene = trimesh.Scene()
    scene.add_geometry(
        part, transform=trimesh.transformations.rotation_matrix(np.pi / 2, [0, 0, 1])
    )
    scene.export(tmp_path / "one.glb")
    mesh = load_mesh_file(tmp_path / "one.glb")
    np.testing.assert_allclose(mesh.normals, [b, [-0.6, 0, 0.8], b], atol=1e-6)
