"""glTF textures beyond the base colour: normalTexture (with its scale) tilts the shading
normal as a closed form predicts, emissiveTexture (sRGB, times emissiveFactor and
KHR_materials_emissive_strength) shows at the right pixels and lights a surface the same
under light and BSDF sampling, and a texture the file cannot supply is one clear error.
Every glTF here is written by the test (JSON, a base64 buffer and PNG files)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from renderer import Renderer, load_scene
from renderer.errors import SceneError
from renderer.image_io import srgb_to_linear
from renderer.materials.texture import Texture
from renderer.scene.types import Camera, Environment, Material


def quad_grid(
    centre: list[float], right: list[float], up: list[float], cells: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A square of (2 cells)^2 triangles spanning centre +- right +- up, front face along
    right x up. glTF uvs: u along +right, v = 0 at the +up edge (the image's top row), so
    that after trimesh's flip nrender's +v runs along +up."""
    centre, right, up = (np.asarray(a, np.float64) for a in (centre, right, up))
    s = np.linspace(0.0, 1.0, cells + 1)
    uu, vv = np.meshgrid(s, s, indexing="xy")  # vv: 0 at the bottom edge
    positions = centre + (2 * uu[..., None] - 1) * right + (2 * vv[..., None] - 1) * up
    uvs = np.stack([uu, 1.0 - vv], axis=-1)
    k = np.arange((cells + 1) ** 2).reshape(cells + 1, cells + 1)
    a, b, c, d = k[:-1, :-1], k[:-1, 1:], k[1:, 1:], k[1:, :-1]
    faces = np.concatenate([np.stack([a, b, c], -1), np.stack([a, c, d], -1)]).reshape(-1, 3)
    return positions.reshape(-1, 3), uvs.reshape(-1, 2), faces


def write_gltf(
    folder: Path,
    quads: list[tuple[tuple[np.ndarray, np.ndarray, np.ndarray], dict]],
    images: dict[str, np.ndarray],
    name: str = "scene.gltf",
) -> Path:
    """A .gltf with one mesh per (quad, material JSON) and PNG files for `images`
    ({file name: [H, W, 3] uint8}); materials name textures by index into `images`."""
    blob = bytearray()
    views, accessors, meshes, nodes, materials = [], [], [], [], []

    def accessor(array: np.ndarray, kind: str, component: int) -> int:
        data = array.tobytes()
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(data)})
        blob.extend(data + b"\0" * (-len(data) % 4))
        entry = {"bufferView": len(views) - 1, "componentType": component}
        entry.update({"count": len(array), "type": kind})
        if kind == "VEC3":
            entry.update({"min": array.min(0).tolist(), "max": array.max(0).tolist()})
        accessors.append(entry)
        return len(accessors) - 1

    for (positions, uvs, faces), material in quads:
        e1 = positions[faces[0, 1]] - positions[faces[0, 0]]
        e2 = positions[faces[0, 2]] - positions[faces[0, 0]]
        normal = np.cross(e1, e2) / np.linalg.norm(np.cross(e1, e2))
        attributes = {
            "POSITION": accessor(positions.astype(np.float32), "VEC3", 5126),
            "NORMAL": accessor(
                np.tile(normal, (len(positions), 1)).astype(np.float32), "VEC3", 5126
            ),
            "TEXCOORD_0": accessor(uvs.astype(np.float32), "VEC2", 5126),
        }
        indices = accessor(faces.reshape(-1).astype(np.uint32), "SCALAR", 5125)
        materials.append(material)
        meshes.append(
            {
                "primitives": [
                    {"attributes": attributes, "indices": indices, "material": len(materials) - 1}
                ]
            }
        )
        nodes.append({"mesh": len(meshes) - 1})
    for file, pixels in images.items():
        Image.fromarray(np.asarray(pixels, np.uint8)).save(folder / file)
    document = {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": list(range(len(nodes)))}],
        "nodes": nodes,
        "meshes": meshes,
        "materials": materials,
        "textures": [{"source": i} for i in range(len(images))],
        "images": [{"uri": file} for file in images],
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [
            {
                "byteLength": len(blob),
                "uri": "data:application/octet-stream;base64," + base64.b64encode(blob).decode(),
            }
        ],
    }
    path = folder / name
    path.write_text(json.dumps(document))
    return path


def upper_half_sky() -> Environment:
    """Radiance 1 from directions with y > 0, 0 below (rows of 22.5 degrees)."""
    radiance = np.zeros((8, 16, 3), np.float32)
    radiance[:4] = 1.0
    return Environment(kind="map", radiance=radiance)


def looking_down_z(size: int, fov: float, height: float = 6.0) -> Camera:
    return Camera(
        position=np.array([0.0, 0.0, height]),
        look_at=np.zeros(3),
        fov=fov,
        resolution=(size, size),
    )


# --- normalTexture --------------------------------------------------------------------
MIRROR = {"pbrMetallicRoughness": {"baseColorFactor": [0.9, 0.9, 0.9, 1], "roughnessFactor": 0.0}}


def test_normal_texture_tilts_a_mirror_by_a_closed_form(cpu, tmp_path: Path) -> None:
    # A smooth metal quad faces the camera (+z) under a sky lit only above the horizon
    # (y > 0). Its normal map tilts every normal by b towards +Y in texture space, which
    # is +v, which here is world +y. Seen head on, the mirror then reflects the sky at 2b
    # above the horizon, and the tilted frame's weighting (materials/README.md) keeps
    # cos(2b) of it: the render is exactly cos(2b) times that of the same mirror really
    # rotated by b. Catches: green read as -v (DirectX convention, or trimesh's v flip
    # undone): the reflection points below the horizon and the mirror goes black;
    # normalTexture.scale ignored (b is 10.2 degrees instead of 19.7: ratio 0.94, not
    # 0.77); the texture decoded as sRGB (a different b); no tilt at all (ratio 1).
    encoded = np.array([128, 150, 253], np.uint8)  # 10.2 degrees towards +Y
    scale = 2.0
    n = encoded / 255.0 * 2.0 - 1.0
    n[:2] *= scale
    n /= np.linalg.norm(n)
    tilt = np.arccos(n[2])
    assert np.degrees(tilt) == pytest.approx(19.7, abs=0.1)

    mapped = dict(MIRROR, normalTexture={"index": 0, "scale": scale})
    flat = quad_grid([0, 0, 0], [1, 0, 0], [0, 1, 0])
    path = write_gltf(tmp_path, [(flat, mapped)], {"normal.png": np.tile(encoded, (4, 4, 1))})
    # The reference: the same mirror rotated so that its geometric normal is n.
    right = np.array([1.0, 0.0, 0.0]) - n[0] * n
    right /= np.linalg.norm(right)
    rotated = quad_grid([0, 0, 0], right, np.cross(n, right))
    reference_path = write_gltf(tmp_path, [(rotated, MIRROR)], {}, name="rotated.gltf")

    values = []
    for file in (path, reference_path):
        scene = load_scene(file)
        scene.environment = upper_half_sky()
        scene.camera = looking_down_z(16, fov=6.0)  # the quad fills the view
        result = Renderer(scene, cpu).render(spp=4, max_depth=1, strategy="mis")
        values.append(result.radiance[4:12, 4:12].mean(axis=(0, 1)))
    mapped_value, reference_value = values
    assert reference_value.min() > 0.5  # the rotated mirror shows the sky
    np.testing.assert_allclose(mapped_value / reference_value, np.cos(2 * tilt), rtol=0.01)


# --- emissiveTexture ------------------------------------------------------------------
def two_colour_texture() -> np.ndarray:
    """16x16 sRGB: the left half red 255, the right half green 128 on top, black below."""
    pixels = np.zeros((16, 16, 3), np.uint8)
    pixels[:, :8] = [255, 0, 0]
    pixels[:8, 8:] = [0, 128, 0]
    return pixels


def emissive(index: int = 0) -> dict:
    # Radiance = (1, 0.75, 0.5) x 2 (the strength extension) x texture.
    return {
        "pbrMetallicRoughness": {"baseColorFactor": [0, 0, 0, 1], "metallicFactor": 0.0},
        "emissiveFactor": [1.0, 0.75, 0.5],
        "emissiveTexture": {"index": index},
        "extensions": {"KHR_materials_emissive_strength": {"emissiveStrength": 2.0}},
    }


def test_emissive_texture_shows_texture_times_factor(cpu, tmp_path: Path) -> None:
    # The camera sees an emissive quad straight on; with a black sky every pixel is the
    # emission itself, exactly. Catches: the texture ignored (the factor everywhere),
    # read as linear (green 0.50 instead of sRGB's 0.216), mirrored in u or v (colours
    # in the wrong quadrants), the factor or the strength extension left out.
    path = write_gltf(
        tmp_path,
        [(quad_grid([0, 0, 0], [1, 0, 0], [0, 1, 0]), emissive())],
        {"glow.png": two_colour_texture()},
    )
    scene = load_scene(path)
    scene.environment = Environment(radiance=np.zeros((1, 1, 3), np.float32))
    scene.camera = looking_down_z(32, fov=2 * np.degrees(np.arctan(1.0 / 6.0)))  # quad = view
    result = Renderer(scene, cpu).render(spp=1, max_depth=0)
    green = 1.5 * float(srgb_to_linear(np.array([128 / 255.0]))[0])
    # Quadrants, away from the bilinear seams at the middle and the wrapping edges.
    image = result.radiance  # row 0 is the top of the image
    regions = {
        "top left": (image[4:12, 4:12], [2.0, 0.0, 0.0]),
        "bottom left": (image[20:28, 4:12], [2.0, 0.0, 0.0]),
        "top right": (image[4:12, 20:28], [0.0, green, 0.0]),
        "bottom right": (image[20:28, 20:28], [0.0, 0.0, 0.0]),
    }
    for name, (pixels, expected) in regions.items():
        np.testing.assert_allclose(pixels.reshape(-1, 3), [expected] * 64, atol=1e-4, err_msg=name)


def emitter_over_floor(tmp_path: Path, cpu) -> Renderer:
    """The textured emitter (8x8 cells, so triangles differ in power and some are black)
    facing down at y = 0.5 over a grey diffuse floor, seen from low down, under it."""
    lamp = quad_grid([0, 0.5, 0], [1, 0, 0], [0, 0, 1], cells=8)  # faces -y
    floor = quad_grid([0, 0, 0], [1.5, 0, 0], [0, 0, -1.5])  # faces +y
    path = write_gltf(
        tmp_path, [(lamp, emissive()), (floor, MIRROR)], {"glow.png": two_colour_texture()}
    )
    scene = load_scene(path)
    for name, material in scene.materials.items():
        if not material.is_emissive:
            scene.materials[name] = Material(albedo=Texture.constant([0.5, 0.5, 0.5]))
    scene.environment = Environment(radiance=np.zeros((1, 1, 3), np.float32))
    scene.camera = Camera(
        position=np.array([0.0, 0.3, 1.6]), look_at=np.zeros(3), fov=70.0, resolution=(24, 24)
    )
    return Renderer(scene, cpu)


def test_emissive_texture_lights_the_same_under_nee_and_bsdf_sampling(cpu, tmp_path: Path) -> None:
    # A floor lit only by the textured emitter: light sampling (NEE) and BSDF sampling
    # estimate the same image only if a light sample's radiance is the texture at the
    # sampled point, and every triangle that can emit is in the light distribution. Whole
    # image means of 24x24 pixels x 512 samples must agree within 4 standard errors of
    # their difference. Catches: sample_light ignoring the texture (NEE sees the factor
    # everywhere); a light sample reading the texture at a corner of its triangle, not
    # at the sampled point (uv not interpolated); triangles over lit texels left out of
    # light sampling, e.g. the power's texel windows taken with v upside down (NEE then
    # misses 10% of the green, 20 standard errors).
    renderer = emitter_over_floor(tmp_path, cpu)
    stats = renderer.buffers.stats
    assert 0 < stats.emitters < 128  # the cells deep in the black quadrant are not lights
    means, errors = {}, {}
    for strategy in ("nee", "bsdf", "mis"):
        result = renderer.render(spp=512, max_depth=1, strategy=strategy, seed=3)
        means[strategy] = result.radiance.mean(axis=(0, 1))
        errors[strategy] = np.sqrt(result.variance.sum(axis=(0, 1))) / result.radiance[..., 0].size
    assert means["bsdf"][0] > 0.01 and means["bsdf"][1] > 0.001  # both colours reach the floor
    for strategy in ("nee", "mis"):
        se = np.sqrt(errors[strategy] ** 2 + errors["bsdf"] ** 2)
        difference = np.abs(means[strategy] - means["bsdf"])
        assert (difference <= 4 * se + 1e-6).all(), (strategy, means, se)


def test_black_emission_texture_is_no_light(cpu, tmp_path: Path) -> None:
    # Catches: a material whose emission texture is black everywhere entering the light
    # distribution (power from the factor alone: NEE samples wasted on it, or a 0/0 pmf).
    pixels = np.zeros((2, 2, 3), np.uint8)
    path = write_gltf(
        tmp_path, [(quad_grid([0, 0, 0], [1, 0, 0], [0, 1, 0]), emissive())], {"black.png": pixels}
    )
    scene = load_scene(path)
    assert not any(m.is_emissive for m in scene.materials.values())
    renderer = Renderer(scene, cpu)
    assert renderer.buffers.stats.emitters == 0


# --- bad input ------------------------------------------------------------------------
@pytest.mark.parametrize("problem", ["index", "missing", "undecodable"])
def test_unusable_texture_is_one_clear_error(tmp_path: Path, problem: str) -> None:
    # Catches: trimesh's silent fallback (a texture index out of range, an image file
    # that is not there or not an image), which would render the material untextured.
    material = dict(MIRROR, normalTexture={"index": 7 if problem == "index" else 0})
    path = write_gltf(
        tmp_path,
        [(quad_grid([0, 0, 0], [1, 0, 0], [0, 1, 0]), material)],
        {"bumps.png": np.full((2, 2, 3), 128, np.uint8)},
    )
    if problem == "missing":
        (tmp_path / "bumps.png").unlink()
    if problem == "undecodable":
        (tmp_path / "bumps.png").write_bytes(b"not a png")
    with pytest.raises(SceneError) as info:
        load_scene(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "normalTexture" in message
    expected = {"index": "index 7 is out of range", "missing": "bumps.png not found"}
    assert expected.get(problem, "cannot decode") in message, message
