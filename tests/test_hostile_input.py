"""Hostile input, one class at a time: each loader answers with one single-line
NrenderError naming the file (and key), checks sizes before allocating, and a scene that
loads renders finite pixels. (test_fuzz_loaders.py finds such classes by mutation; these
pin the ones it found.)"""

from __future__ import annotations

import json
import struct
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from neural_fixtures import write_random_nmat

from renderer import Renderer, load_scene
from renderer.errors import (
    ImageError,
    MaterialError,
    NeuralMaterialError,
    NrenderError,
    SceneError,
    one_line,
)
from renderer.image_io import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, read_image, write_exr
from renderer.input_files import MAX_JSON_DEPTH, MAX_PATH_CHARS
from renderer.materials import load_material
from renderer.neural.nmat import NeuralMaterial
from renderer.scene.mesh_io import MAX_COORDINATE, load_mesh_file
from renderer.scene.types import MAX_RADIANCE


def small_scene(**changes: object) -> dict:
    scene = {
        "version": 1,
        "camera": {"position": [0, 1, 4], "look_at": [0, 0.5, 0], "resolution": [8, 8]},
        "integrator": {"spp": 4, "max_depth": 4},
        "environment": {"type": "constant", "radiance": 0.5},
        "materials": {
            "grey": {"type": "diffuse", "albedo": 0.5},
            "lamp": {"type": "diffuse", "albedo": 0.0, "emission": 5.0},
        },
        "meshes": {
            "ball": {"type": "sphere", "radius": 0.5, "segments": 12, "rings": 6},
            "panel": {"type": "plane", "size": [1.0, 1.0]},
        },
        "instances": [
            {"mesh": "ball", "material": "grey"},
            {
                "mesh": "panel",
                "material": "lamp",
                "transform": {"translate": [0, 2, 0], "rotate": [180, 0, 0]},
            },
        ],
    }
    scene.update(changes)
    return scene


def one_line_error(error: type[NrenderError], fn, *args, names: str = "") -> str:
    with pytest.raises(error) as info:
        fn(*args)
    message = str(info.value)
    assert "\n" not in message and len(message) <= 1000, message
    assert names in message, message
    return message


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- JSON documents ---------------------------------------------------------------------
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100_000])
def test_deep_nesting_is_one_error(tmp_path: Path, depth: int) -> None:
    # Catches: json.loads' RecursionError escaping (100000 levels), and nesting below the
    # parser's limit but past ours going unchecked.
    nested = "[" * depth + "]" * depth
    scene = write_text(tmp_path / "deep.json", f'{{"version": 1, "camera": {nested}}}')
    assert "nests deeper" in one_line_error(SceneError, load_scene, scene, names="deep.json")
    material = write_text(tmp_path / "deep_material.json", f'{{"version": 1, "base": {nested}}}')
    one_line_error(MaterialError, load_material, material, names="deep_material.json")


def test_huge_numbers_name_the_key(tmp_path: Path) -> None:
    # Catches: int("1" * 5000) hitting Python's digit limit, float(10**400) overflowing,
    # and an error message that tries to print a 5000-digit integer.
    text = json.dumps(small_scene()).replace('"spp": 4', '"spp": ' + "9" * 5000)
    message = one_line_error(
        SceneError, load_scene, write_text(tmp_path / "s.json", text), names="integrator.spp"
    )
    assert len(message) < 300, message
    dict_scene = small_scene()
    dict_scene["camera"]["fov"] = 10**400  # a Python int beyond the float range
    one_line_error(SceneError, load_scene, dict_scene, names="camera.fov")
    dict_scene = small_scene()
    dict_scene["camera"]["position"] = [0, 10**400, 4]
    one_line_error(SceneError, load_scene, dict_scene, names="camera.position")


def test_long_paths_are_rejected_before_the_file_system(tmp_path: Path) -> None:
    # Catches: OSError "File name too long" escaping from Path.is_file().
    long_name = "x" * 5000 + ".json"
    one_line_error(SceneError, load_scene, tmp_path / long_name, names="longer than")
    one_line_error(MaterialError, load_material, tmp_path / long_name, names="longer than")
    scene = small_scene()
    scene["meshes"]["ball"] = {"type": "file", "path": "a/" * (MAX_PATH_CHARS // 2 + 1) + "m.obj"}
    one_line_error(SceneError, load_scene, scene, names="meshes.ball.path")


def test_messages_are_single_lines() -> None:
    # Catches: a third-party parser's multi-line message passed through to the CLI.
    assert str(SceneError("a.json: bad\nthing\r\n  here")) == "a.json: bad thing here"
    assert len(str(SceneError("x" * 10_000))) <= 1000


# --- .nmat headers ----------------------------------------------------------------------
def rewrite_header(path: Path, edit) -> None:
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    edit(header["__metadata__"])
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + size :])


@pytest.mark.parametrize(
    "edit",
    [
        lambda arch: arch.update(width=1e999),  # float infinity where an integer belongs
        lambda arch: arch.update(decoder_hidden=[1e999, 8]),  # int(inf): OverflowError
        lambda arch: arch.update(width="[" * 100_000),
    ],
    ids=["infinite-width", "huge-layer", "deep-json"],
)
def test_nmat_header_numbers(tmp_path: Path, edit) -> None:
    # Catches: OverflowError (int(inf)) or RecursionError escaping the header parser.
    path = write_random_nmat(tmp_path / "m.nmat", size=4, decoder=(8, 8))

    def change(meta: dict) -> None:
        arch = json.loads(meta["architecture"])
        edit(arch)
        text = json.dumps(arch)
        meta["architecture"] = text.replace('"' + "[" * 100_000 + '"', "[" * 100_000)

    rewrite_header(path, change)
    one_line_error(NeuralMaterialError, NeuralMaterial.load, path, names="m.nmat")


# --- meshes -----------------------------------------------------------------------------
@pytest.mark.parametrize("face", ["0 1 99", "0 1 -9", "0 1 2147483647"])
def test_mesh_index_out_of_range(tmp_path: Path, face: str) -> None:
    # Catches: numpy's IndexError (or a silent wrap of a negative index) when normals or
    # the BVH read vertex positions through a face that points past the vertex list.
    header = (
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
        "property float z\nelement face 2\nproperty list uchar int vertex_indices\nend_header\n"
    )
    ply = write_text(tmp_path / "tri.ply", header + f"0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n3 {face}\n")
    message = one_line_error(SceneError, load_mesh_file, ply, names="tri.ply")
    assert "triangle 1 refers to vertex" in message, message


def test_mesh_coordinates_beyond_the_limit(tmp_path: Path) -> None:
    # Catches: float32 squared distances overflowing in the kernels for a mesh at 1e30.
    obj = write_text(tmp_path / "far.obj", "v 0 0 0\nv 1e30 0 0\nv 0 1 0\nf 1 2 3\n")
    one_line_error(SceneError, load_mesh_file, obj, names="far.obj")
    scene = small_scene()
    scene["instances"][0]["transform"] = {"translate": [0, 0, 2 * MAX_COORDINATE]}
    one_line_error(SceneError, load_scene, scene, names="instances[0]")


# --- images -----------------------------------------------------------------------------
def png_claiming(path: Path, width: int, height: int) -> Path:
    """A valid 1x1 PNG whose header (with a correct checksum) claims width x height."""
    import imageio.v3 as iio

    iio.imwrite(path, np.zeros((1, 1, 3), np.uint8))
    data = path.read_bytes()
    chunk = b"IHDR" + struct.pack(">II", width, height) + data[24:29]
    path.write_bytes(data[:12] + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[33:])
    return path


def test_absurd_image_sizes_fail_from_the_header(tmp_path: Path) -> None:
    # Catches: decoding first and failing in a multi-gigabyte allocation (40000^2 float32
    # RGB is 19 GB), or PIL's decompression-bomb limit being the only guard.
    start = time.perf_counter()
    message = one_line_error(
        ImageError, read_image, png_claiming(tmp_path / "big.png", 40000, 40000), names="big.png"
    )
    assert "Mpixel" in message or "40000x40000" in message
    hdr = tmp_path / "big.hdr"
    hdr.write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 40000 +X 40000\n" + bytes(64))
    one_line_error(ImageError, read_image, hdr, names="big.hdr")
    exr = tmp_path / "big.exr"
    write_exr(exr, {"RGB": np.zeros((2, 2, 3), np.float32)})
    data = exr.read_bytes()
    at = data.index(b"dataWindow\x00box2i\x00") + len(b"dataWindow\x00box2i\x00") + 4
    exr.write_bytes(data[:at] + struct.pack("<iiii", 0, 0, 39999, 39999) + data[at + 16 :])
    one_line_error(ImageError, read_image, exr, names="big.exr: image size 40000x40000")
    assert time.perf_counter() - start < 5.0  # nothing was decoded
    # 144 Mpixel: past our cap, below Pillow's own error threshold (179 Mpixel), so it is
    # our check that answers.
    assert MAX_IMAGE_SIDE >= 12000 and MAX_IMAGE_PIXELS < 12000 * 12000 < 178956970
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns above 89 Mpixel
        one_line_error(
            ImageError,
            read_image,
            png_claiming(tmp_path / "wide.png", 12000, 12000),
            names="Mpixel",
        )


# --- scenes that load render finite pixels ----------------------------------------------
def finite_render(scene_dict: dict, cpu) -> None:
    result = Renderer(load_scene(scene_dict), cpu).render()
    for layer in ("radiance", "variance", "albedo", "normal", "depth"):
        assert np.isfinite(getattr(result, layer)).all(), layer
    assert result.dropped_samples == 0


def test_extreme_but_valid_scenes_render_finite(cpu, tmp_path: Path) -> None:
    # Catches: a tiny emitter (area 5e-45) entering the light distribution, whose float32
    # normal is NaN (0/0) when NEE samples it; radiance at the limit overflowing the
    # film's squared sums; a near-zero field of view or scale making NaN ray cones.
    tiny = write_text(tmp_path / "tiny.obj", "v 0 0 0\nv 1e-22 0 0\nv 0 0 1e-22\nf 1 3 2\n")
    scene = small_scene(environment={"type": "constant", "radiance": 0.0})
    scene["materials"]["lamp"]["emission"] = MAX_RADIANCE
    scene["meshes"]["panel"] = {"type": "file", "path": str(tiny), "smooth": False}
    scene["instances"][1]["transform"] = {"translate": [0, 2, 0]}
    finite_render(scene, cpu)
    scene = small_scene(environment={"type": "constant", "radiance": 1e6, "scale": 1e6})
    scene["materials"]["lamp"]["emission"] = MAX_RADIANCE  # the visible panel, at the limit
    finite_render(scene, cpu)
    scene["environment"]["scale"] = 1e7
    one_line_error(SceneError, load_scene, scene, names="environment.scale")
    scene = small_scene()
    scene["camera"]["fov"] = 1e-9
    scene["instances"][0]["transform"] = {"scale": [1e-4, 1e-4, 1e-4]}
    finite_render(scene, cpu)


def test_absurd_emission_is_rejected(tmp_path: Path) -> None:
    # Catches: emission that overflows float32 power sums being accepted (the light
    # distribution then holds inf and every NEE sample is NaN), in a scene file or in a
    # glTF material's emissiveFactor.
    import trimesh

    scene = small_scene()
    scene["materials"]["lamp"]["emission"] = 1e30
    one_line_error(SceneError, load_scene, scene, names="materials.lamp.emission")
    box = trimesh.creation.box()
    material = trimesh.visual.material.PBRMaterial(emissiveFactor=[1e30, 1e30, 1e30])
    box.visual = trimesh.visual.TextureVisuals(material=material)
    trimesh.Scene(box).export(tmp_path / "bright.glb")
    one_line_error(SceneError, load_scene, tmp_path / "bright.glb", names="emissiveFactor")


def test_nmat_with_nan_latents_is_rejected(tmp_path: Path) -> None:
    # Catches: NaN latents reaching the renderer (every pixel of the material NaN).
    path = write_random_nmat(tmp_path / "nan.nmat", size=4, decoder=(8, 8))
    material = NeuralMaterial.load(path)
    material.levels[0][0, 0, 0] = torch.nan
    from safetensors.torch import save

    path.write_bytes(save(material.tensors(), metadata=material.metadata))
    one_line_error(NeuralMaterialError, NeuralMaterial.load, path, names="NaN")


def test_one_line_helper_keeps_short_messages() -> None:
    assert one_line("plain message") == "plain message"
