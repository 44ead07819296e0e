"""Material graph files: the library's format round trip, and one clear error for each
kind of broken file (naming the file and the key)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import record_read_keys

from renderer.errors import MaterialError, SceneError
from renderer.materials import Mix, Stack, load_material
from renderer.scene import load_scene


def write(tmp_path: Path, data: Any, name: str = "m.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def full_graph() -> dict[str, Any]:
    """Every texture type, every lobe type but dielectric, and nested mixes."""
    return {
        "version": 1,
        "name": "everything",
        "description": "kitchen sink",
        "resolution": 32,
        "textures": {
            "n": {
                "type": "noise",
                "frequency": 4,
                "octaves": 2,
                "gain": 0.5,
                "seed": 1,
                "warp": 0.2,
            },
            "c": {"type": "cellular", "cells": 4, "coverage": 0.5, "softness": 0.2, "seed": 2},
            "s": {"type": "scratches", "count": 5, "length": 0.2, "width": 1, "direction": 30},
            "d": {"type": "dust", "frequency": 3, "coverage": 0.4, "seed": 3},
            "r": {
                "type": "remap",
                "input": "n",
                "threshold": [0.2, 0.8],
                "invert": True,
                "low": 0.1,
                "high": 0.5,
            },
            "bumps": {"type": "normal_map", "height": "n", "depth": 0.01},
            "k": {"type": "checker", "colors": [0.2, 0.8], "tiling": 4},
            "img": {"type": "image", "path": "tex.png", "srgb": True, "tiling": [2, 1]},
            "flat": {"type": "constant", "value": 0.25},
        },
        "nodes": {
            "a": {
                "type": "stack",
                "base": [
                    {"type": "sheen", "color": "k", "roughness": 0.3, "weight": 0.2},
                    {
                        "type": "flakes",
                        "color": 0.9,
                        "edge_tint": 1,
                        "roughness": 0.2,
                        "scale": 50,
                        "spread": 0.2,
                        "density": 0.5,
                        "weight": "c",
                    },
                    {"type": "diffuse", "albedo": "img"},
                ],
                "layers": [
                    {
                        "ior": 1.5,
                        "roughness": 0.0,
                        "thickness": 0.2,
                        "absorption": [0.1, 0.2, 0.3],
                        "normal_map": "bumps",
                        "scattering": {"density": 1, "albedo": 0.9, "anisotropy": 0.2},
                    },
                    {"ior": 1.3, "roughness": "r"},
                ],
                "normal_map": "bumps",
            },
            "b": {
                "type": "stack",
                "base": [
                    {
                        "type": "conductor",
                        "metal": "copper",
                        "roughness": "flat",
                        "anisotropy": -0.5,
                    },
                    {"type": "conductor", "eta": [0.2, 0.9, 1.1], "k": [3.9, 2.4, 2.1]},
                    {"type": "conductor", "reflectivity": "d", "edge_tint": 0.5},
                ],
            },
            "inner": {"type": "mix", "mask": "s", "a": "a", "b": "b"},
            "top": {"type": "mix", "mask": 0.5, "a": "inner", "b": "b"},
        },
        "root": "top",
    }


@pytest.fixture()
def texture_png(tmp_path: Path) -> Path:
    import imageio.v3 as iio

    path = tmp_path / "tex.png"
    iio.imwrite(path, np.full((8, 8, 3), 128, np.uint8))
    return path


def test_full_graph_loads(tmp_path: Path, texture_png: Path) -> None:
    graph = load_material(write(tmp_path, full_graph()))
    assert graph.name == "everything"
    assert isinstance(graph.root, Mix) and isinstance(graph.root.a, Mix)
    stacks = graph.stacks()
    assert len(stacks) == 3 and stacks[1] is stacks[2]  # node "b" is shared
    a = stacks[0]
    assert isinstance(a, Stack) and len(a.lobes) == 3 and len(a.layers) == 2
    assert a.layers[0].scattering == 1.0 and a.layers[0].normal_map is a.normal_map
    for name in ("n", "c", "s", "d", "r"):
        image = graph.textures[name].image
        assert image.shape == (32, 32, 3) and image.min() >= 0 and image.max() <= 1
    normals = graph.textures["bumps"].image
    np.testing.assert_allclose(np.linalg.norm(normals, axis=-1), 1.0, atol=1e-5)
    # The same dict loads to the same graph.
    same = load_material(full_graph(), base_dir=tmp_path)
    np.testing.assert_array_equal(same.textures["c"].image, graph.textures["c"].image)


def test_patterns_tile_and_depend_on_seed(tmp_path: Path) -> None:
    from renderer.materials import patterns

    # Octaves finer than the texels are skipped rather than allocated.
    assert patterns.fbm(16, 4096, 12, 0.5, seed=0).shape == (16, 16)
    a = patterns.fbm(64, 4, 3, 0.5, seed=1)
    assert not np.array_equal(a, patterns.fbm(64, 4, 3, 0.5, seed=2))
    np.testing.assert_array_equal(a, patterns.fbm(64, 4, 3, 0.5, seed=1))
    # Opposite edges continue each other about as smoothly as neighbouring columns.
    inner = np.abs(np.diff(a, axis=1)).mean()
    seam = np.abs(a[:, 0] - a[:, -1]).mean()
    assert seam < 3 * inner


BROKEN: list[tuple[str, Any, str]] = [
    ("unknown lobe", {"base": [{"type": "velvet"}]}, r"base\[0\]\.type: expected one of"),
    (
        "unknown key",
        {"base": [{"type": "diffuse", "albdo": 0.5}]},
        r"unknown or unused key 'albdo'",
    ),
    ("nan parameter", {"base": [{"type": "diffuse", "albedo": float("nan")}]}, r"albedo: .*finite"),
    (
        "negative roughness",
        {"base": [{"type": "conductor", "roughness": -0.1}]},
        r"roughness: values must be >= 0",
    ),
    (
        "roughness above one",
        {"layers": [{"roughness": 2}], "base": [{"type": "diffuse"}]},
        r"roughness: values must be <= 1",
    ),
    (
        "missing texture file",
        {"base": [{"type": "diffuse", "albedo": {"type": "image", "path": "nope.png"}}]},
        r"albedo\.path: .*nope\.png",
    ),
    (
        "undefined texture",
        {"base": [{"type": "diffuse", "albedo": "wood"}]},
        r"no texture named 'wood'",
    ),
    (
        "unused texture",
        {"textures": {"t": {"type": "noise"}}, "base": [{"type": "diffuse"}]},
        r"textures\.t: defined but never used",
    ),
    (
        "cyclic textures",
        {
            "textures": {
                "a": {"type": "remap", "input": "b"},
                "b": {"type": "remap", "input": "a"},
            },
            "base": [{"type": "diffuse", "albedo": "a"}],
        },
        r"cyclic reference: textures\.a -> textures\.b -> textures\.a",
    ),
    (
        "cyclic nodes",
        {
            "nodes": {
                "x": {"type": "mix", "mask": 0.5, "a": "y", "b": "y"},
                "y": {"type": "mix", "mask": 0.5, "a": "x", "b": "x"},
            },
            "root": "x",
        },
        r"cyclic reference: nodes\.x -> nodes\.y -> nodes\.x",
    ),
    (
        "self mix",
        {"nodes": {"x": {"type": "mix", "mask": 0.5, "a": "x", "b": "x"}}, "root": "x"},
        r"cyclic reference: nodes\.x -> nodes\.x",
    ),
    (
        "unreachable node",
        {
            "nodes": {
                "x": {"type": "stack", "base": [{"type": "diffuse"}]},
                "y": {"type": "stack", "base": [{"type": "diffuse"}]},
            },
            "root": "x",
        },
        r"nodes\.y: defined but not reachable",
    ),
    ("no base", {"layers": []}, r"base: this key is required"),
    ("too many lobes", {"base": [{"type": "diffuse"}] * 5}, r"expected 1 to 4 base lobes"),
    (
        "dielectric under layer",
        {"base": [{"type": "dielectric"}], "layers": [{}]},
        r"dielectric base lobe must be the only lobe",
    ),
    (
        "mirror under coat",
        {"base": [{"type": "conductor", "roughness": 0}], "layers": [{}]},
        r"base\[0\]\.roughness: under a layer",
    ),
    (
        "smooth inner layer",
        {"base": [{"type": "diffuse"}], "layers": [{}, {"roughness": 0}]},
        r"layers\[1\]\.roughness: layers below the top",
    ),
    (
        "bad normal map",
        {"textures": {"n": {"type": "noise"}}, "base": [{"type": "diffuse"}], "normal_map": "n"},
        r"normal_map: expected a texture of type 'normal_map'",
    ),
    (
        "mask above one",
        {
            "nodes": {
                "x": {"type": "mix", "mask": 2, "a": "s", "b": "s"},
                "s": {"type": "stack", "base": [{"type": "diffuse"}]},
            },
            "root": "x",
        },
        r"mask: values must be <= 1",
    ),
    (
        "absurd resolution",
        {"resolution": 100000, "base": [{"type": "diffuse"}]},
        r"resolution: expected an integer in",
    ),
    (
        "unknown metal",
        {"base": [{"type": "conductor", "metal": "unobtainium"}]},
        r"metal: expected one of",
    ),
    (
        "absurd scratches",
        {
            "textures": {"s": {"type": "scratches", "count": 100000, "length": 4}},
            "base": [{"type": "diffuse", "albedo": "s"}],
        },
        r"textures\.s\.count: 100000 scratches of length 4 at 512x512 is too much work",
    ),
    (
        "absurd resolution of a texture",
        {
            "textures": {"n": {"type": "noise", "resolution": 100000}},
            "base": [{"type": "diffuse", "albedo": "n"}],
        },
        r"textures\.n\.resolution: expected an integer in \[1, 8192\]",
    ),
]


@pytest.mark.parametrize("case", BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_material_gives_one_clear_error(tmp_path: Path, case: tuple[str, Any, str]) -> None:
    _, body, pattern = case
    path = write(tmp_path, {"version": 1, **body})
    with pytest.raises(MaterialError, match=pattern) as info:
        load_material(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message


def test_broken_files(tmp_path: Path) -> None:
    with pytest.raises(MaterialError, match=r"m\.json: invalid JSON at line 1"):
        load_material(write(tmp_path, "{ nope"))
    with pytest.raises(MaterialError, match=r"missing\.json: material file not found"):
        load_material(tmp_path / "missing.json")
    with pytest.raises(MaterialError, match=r"version: unsupported material version 2"):
        load_material(write(tmp_path, {"version": 2, "base": [{"type": "diffuse"}]}))
    from renderer.image_io import write_exr

    nan_image = np.full((4, 4, 3), 0.5, np.float32)
    nan_image[1, 2] = np.nan
    write_exr(tmp_path / "nan.exr", {"RGB": nan_image})
    with pytest.raises(
        MaterialError, match=r"albedo\.path: .*nan\.exr: 1 pixels are NaN or infinite"
    ):
        load_material(
            write(
                tmp_path,
                {
                    "version": 1,
                    "base": [{"type": "diffuse", "albedo": {"type": "image", "path": "nan.exr"}}],
                },
            )
        )
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(MaterialError, match=r"albedo\.path: .*bad\.png"):
        load_material(
            write(
                tmp_path,
                {
                    "version": 1,
                    "base": [{"type": "diffuse", "albedo": {"type": "image", "path": "bad.png"}}],
                },
            )
        )


def scene_with(material: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": 1,
        "camera": {"position": [0, 0, 3], "look_at": [0, 0, 0], "resolution": [8, 8]},
        "materials": {"m": material},
        "meshes": {"s": {"type": "sphere"}},
        "instances": [{"mesh": "s", "material": "m"}],
    }


def test_scene_material_slot_takes_a_graph(tmp_path: Path) -> None:
    graph = {"version": 1, "base": [{"type": "conductor", "metal": "gold"}]}
    write(tmp_path, graph, "gold.json")
    by_path = load_scene(scene_with({"type": "layered", "path": "gold.json"}), base_dir=tmp_path)
    inline = load_scene(
        scene_with({"type": "layered", "graph": graph, "emission": 0.5}), base_dir=tmp_path
    )
    assert by_path.materials["m"].graph.stacks()[0].lobes[0].type == "conductor"
    assert inline.materials["m"].emission.tolist() == [0.5, 0.5, 0.5]
    with pytest.raises(SceneError, match=r"materials\.m\.path: .*gold\.json: base\[0\]\.metal"):
        write(
            tmp_path, {"version": 1, "base": [{"type": "conductor", "metal": "tin"}]}, "gold.json"
        )
        load_scene(scene_with({"type": "layered", "path": "gold.json"}), base_dir=tmp_path)
    with pytest.raises(SceneError, match=r"exactly one of 'path' and 'graph'"):
        load_scene(scene_with({"type": "layered"}), base_dir=tmp_path)


def test_material_file_loads_as_preview_scene() -> None:
    scene = load_scene(Path(__file__).parent.parent / "materials" / "coated_plastic.json")
    assert scene.materials["subject"].kind == "layered"
    assert {i.material for i in scene.instances} == {"subject", "floor"}


def test_every_key_is_documented(
    tmp_path: Path, texture_png: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = record_read_keys(monkeypatch)
    load_material(full_graph(), base_dir=tmp_path)
    load_material({"version": 1, "base": [{"type": "dielectric", "ior": 1.3, "roughness": 0.1}]})
    doc = (Path(__file__).parent.parent / "materials" / "README.md").read_text()
    missing = sorted(k for k in read if f"`{k}`" not in doc)
    assert not missing, f"keys read but not documented in materials/README.md: {missing}"
    assert len(read) > 50
