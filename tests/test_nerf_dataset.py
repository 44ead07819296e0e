"""NeRF datasets: `nrender nerf dataset` exports, the loader reads them and the public
NeRF-synthetic layout, and every broken dataset is one error naming its file."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from renderer.fields import cameras
from renderer.fields import dataset as dataset_module
from renderer.fields.dataset import (
    DEFAULT_AABB,
    SCENE_FROM_Z_UP,
    NerfDataset,
    NerfDatasetError,
    composite,
    dataset_hash,
    load_dataset,
)
from renderer.fields.dataset_export import (
    CAMERA_ANGLE_X,
    NerfExportError,
    add_dataset_arguments,
    camera_distance,
    camera_poses,
    cmd_nerf_dataset,
    export_dataset,
    look_at_origin,
)
from renderer.render.film import tonemap

# Emissive spheres of albedo 0: a pixel's radiance is exactly its sphere's emission, so the
# straight colour of any covered pixel, edges included, is known. A grey environment lights
# nothing (albedo 0) but must stay out of the background.
SPHERES = {  # name: (centre in the scene's +Y-up world, radius, emission)
    "red": ((0.6, 0.0, 0.0), 0.3, (0.8, 0.05, 0.05)),
    "green": ((-0.6, 0.0, 0.1), 0.3, (0.05, 0.8, 0.05)),
    "blue": ((0.0, 0.7, -0.2), 0.2, (0.05, 0.05, 0.8)),  # the highest: largest z in the file
}
WIDTH, HEIGHT = 48, 36  # not square: a vertical/horizontal field of view mix-up shows
SUBSAMPLES = 8  # per pixel side, for the analytic coverage


def sphere_scene() -> dict:
    return {
        "version": 1,
        "camera": {"position": [0, 0, 4], "look_at": [0, 0, 0], "fov": 40, "resolution": [8, 8]},
        "environment": {"type": "constant", "radiance": 0.5},
        "materials": {
            name: {"type": "diffuse", "albedo": 0.0, "emission": list(emission)}
            for name, (_, _, emission) in SPHERES.items()
        },
        "meshes": {name: {"type": "sphere", "radius": r} for name, (_, r, _) in SPHERES.items()},
        "instances": [
            {"mesh": name, "material": name, "transform": {"translate": list(c)}}
            for name, (c, _, _) in SPHERES.items()
        ],
    }


@pytest.fixture(scope="module")
def exported(cpu, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("nerf") / "spheres"
    summary = export_dataset(
        sphere_scene(),
        out,
        views_train=3,
        views_val=1,
        views_test=1,
        resolution=(WIDTH, HEIGHT),
        spp=16,
        device=cpu,
    )
    assert summary.completed and summary.views == {"train": 3, "val": 1, "test": 1}
    return out


def spheres_in_dataset(data: NerfDataset) -> dict[str, tuple[np.ndarray, float]]:
    """Centre and radius of each sphere in the file's world (via scene_from_dataset)."""
    m = np.linalg.inv(data.scene_from_dataset)
    scale = np.cbrt(np.linalg.det(m[:3, :3]))
    return {
        name: (m[:3, :3] @ np.array(c) + m[:3, 3], r * scale) for name, (c, r, _) in SPHERES.items()
    }


def analytic_coverage(data: NerfDataset, view: int) -> dict[str, np.ndarray]:
    """Per sphere [H, W]: the share of a pixel's area whose ray (cameras.pixel_rays, the
    convention training uses) hits that sphere first; a box filter like nrender's."""
    spheres = spheres_in_dataset(data)
    offsets = (np.arange(SUBSAMPLES) + 0.5) / SUBSAMPLES
    ys, xs, oy, ox = np.meshgrid(
        np.arange(data.height), np.arange(data.width), offsets, offsets, indexing="ij"
    )
    pixels = torch.tensor(np.stack([(xs + ox).ravel(), (ys + oy).ravel()], -1))
    o, d = cameras.pixel_rays(
        torch.tensor(data.c2w[view]), data.focal, data.width, data.height, pixels
    )
    o, d = o.numpy(), d.numpy()
    t = {}
    for name, (c, r) in spheres.items():
        oc = o - c
        b = (oc * d).sum(-1)
        disc = b * b - ((oc * oc).sum(-1) - r * r)
        t[name] = np.where(disc > 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
    nearest = np.min(list(t.values()), axis=0)
    shape = (data.height, data.width, SUBSAMPLES * SUBSAMPLES)
    return {
        name: ((t[name] == nearest) & np.isfinite(nearest)).reshape(shape).mean(-1)
        for name in spheres
    }


def rendered_coverage(data: NerfDataset, view: int) -> dict[str, np.ndarray]:
    """Per sphere [H, W]: the image's alpha where its colour is that sphere's."""
    image = data.images[view]
    channel = image[..., :3].argmax(-1)
    return {name: image[..., 3] * (channel == k) for k, name in enumerate(SPHERES)}


def centroid(weights: np.ndarray) -> np.ndarray:
    ys, xs = np.indices(weights.shape)
    return np.array([(xs * weights).sum(), (ys * weights).sum()]) / weights.sum()


def test_export_round_trip_puts_every_sphere_where_the_cameras_say(exported: Path) -> None:
    # Each sphere's silhouette in the image against the one the file's cameras predict
    # through cameras.pixel_rays (exact for any sphere, unlike its centre's projection
    # under perspective). Planted bugs that fail it: pixel corners instead of centres
    # (0.5 px off), the camera rotation transposed, a +Y-up camera in a +Z-up file, and the
    # vertical field of view written as camera_angle_x (wrong on a non-square image).
    checked = 0
    for split in ("train", "val", "test"):
        data = load_dataset(exported, split)
        assert (data.width, data.height) == (WIDTH, HEIGHT)
        for view in range(len(data.images)):
            expected, rendered = analytic_coverage(data, view), rendered_coverage(data, view)
            for name in SPHERES:
                if expected[name].sum() < 10:  # hidden behind another
                    continue
                checked += 1
                # 16 spp: the mean of a few dozen edge pixels' coverage, noise < 0.1 px
                error = np.abs(centroid(rendered[name]) - centroid(expected[name])).max()
                assert error < 0.2, f"{split} view {view}: {name} is {error:.2f} px off"
                area_ratio = rendered[name].sum() / expected[name].sum()
                assert abs(area_ratio - 1) < 0.1, f"{split} {view}: {name} area x{area_ratio}"
    assert checked >= 12


def test_projected_centres_land_on_their_sphere(exported: Path) -> None:
    data = load_dataset(exported, "train")
    spheres = spheres_in_dataset(data)
    checked = 0
    for view in range(len(data.images)):
        expected = analytic_coverage(data, view)
        for k, (name, (c, _)) in enumerate(spheres.items()):
            x, y = cameras.project(data.c2w[view], data.focal, WIDTH, HEIGHT, c[None])[0]
            if expected[name][int(y), int(x)] < 1:  # hidden behind another
                continue
            checked += 1
            pixel = data.images[view, int(y), int(x)]
            # the centre's pixel is inside the silhouette (radius >= 3 px here): opaque and
            # exactly the sphere's colour
            assert pixel[3] == 1.0, f"view {view}: {name} centre at ({x:.1f}, {y:.1f})"
            emission = np.array(SPHERES[name][2])
            np.testing.assert_allclose(pixel[:3], tonemap(emission[None, None])[0, 0] / 255)
            assert pixel[:3].argmax() == k
    assert checked >= 6


def neighbourhood(image: np.ndarray, reduce) -> np.ndarray:
    """`reduce` (np.max, np.min) over each pixel's 3 x 3 neighbourhood."""
    padded = np.pad(image, 1, mode="edge")
    h, w = image.shape
    return reduce([padded[y : y + h, x : x + w] for y in range(3) for x in range(3)], axis=0)


def test_alpha_is_coverage_and_the_background_is_transparent(exported: Path) -> None:
    data = load_dataset(exported, "train")
    assert data.has_alpha
    for view in range(len(data.images)):
        expected = sum(analytic_coverage(data, view).values())
        image = data.images[view]
        # (8 x 8 subsamples can miss a sliver that a random sample hits: keep a pixel away)
        empty, full = neighbourhood(expected, np.max) == 0, neighbourhood(expected, np.min) == 1
        assert empty.sum() > 500 and full.sum() > 20
        # the grey environment shows nowhere: colour and alpha 0
        np.testing.assert_array_equal(image[empty], 0.0)
        np.testing.assert_array_equal(image[full][:, 3], 1.0)
        # edge pixels: alpha is the share of rays that hit, to the 16 spp's noise
        edge = ~empty & ~full
        assert np.abs(image[edge][:, 3] - expected[edge]).mean() < 0.15


def test_the_file_world_is_z_up_and_normalised(exported: Path) -> None:
    # The +Z-up convention checked apart from the cameras, which an export could get
    # consistently wrong: the scene's +Y is the file's +Z.
    data = load_dataset(exported, "train")
    m = data.scene_from_dataset
    scale = np.cbrt(np.linalg.det(m[:3, :3]))
    np.testing.assert_allclose(m[:3, :3] / scale, [[1, 0, 0], [0, 0, 1], [0, -1, 0]], atol=1e-12)
    spheres = spheres_in_dataset(data)
    assert spheres["blue"][0][2] > max(spheres["red"][0][2], spheres["green"][0][2]) + 0.3
    # the aabb holds every sphere, and the box's centre is the origin
    for c, r in spheres.values():
        assert (data.aabb[0] < c - r).all() and (c + r < data.aabb[1]).all()
    np.testing.assert_allclose(data.aabb.sum(axis=0), 0.0, atol=1e-9)
    # cameras sit at one distance, outside the box, and the splits' cameras differ
    distances = np.linalg.norm(data.c2w[:, :3, 3], axis=1)
    np.testing.assert_allclose(distances, distances[0])
    assert distances[0] > np.abs(data.aabb).max() * math.sqrt(3)
    test = load_dataset(exported, "test")
    assert np.abs(test.c2w[0] - data.c2w).max() > 0.1
    doc = json.loads((exported / "transforms_train.json").read_text())
    assert doc["frames"][0]["file_path"] == "./train/r_0"
    assert doc["nrender"]["instances"] == [0, 1, 2]


def test_export_is_deterministic_and_replaces_only_its_own_datasets(cpu, exported, tmp_path):
    tiny = dict(views_train=1, views_val=1, views_test=1, resolution=8, spp=1, device=cpu)
    out = tmp_path / "ds"
    first = export_dataset(sphere_scene(), out, objects=["red", "2"], **tiny)
    assert first.instances == [0, 2]
    before = dataset_hash(out)
    export_dataset(sphere_scene(), out, objects=["red", "2"], **tiny)  # replaces it
    assert dataset_hash(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no temporary folders left
    # stopped: nothing written, the dataset there unchanged
    stopped = export_dataset(sphere_scene(), out, should_stop=lambda: True, **tiny)
    assert not stopped.completed
    assert dataset_hash(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]

    # Ctrl-C: the same
    def interrupt() -> bool:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_dataset(sphere_scene(), out, should_stop=interrupt, **tiny)
    assert dataset_hash(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    # a folder that is not an nrender dataset is refused, before anything renders
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(NerfExportError, match=r"mine: exists and is not an nrender dataset"):
        export_dataset(sphere_scene(), tmp_path / "mine", **tiny)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_camera_poses() -> None:
    distance = camera_distance(40, 30)
    for hemisphere in (False, True):
        poses = camera_poses(200, 3, 0, hemisphere, distance)
        np.testing.assert_array_equal(poses, camera_poses(200, 3, 0, hemisphere, distance))
        assert np.abs(poses - camera_poses(200, 3, 1, hemisphere, distance)).max() > 0.1
        rot = poses[:, :3, :3]
        np.testing.assert_allclose(
            rot.transpose(0, 2, 1) @ rot, np.tile(np.eye(3), (200, 1, 1)), atol=1e-12
        )
        np.testing.assert_allclose(np.linalg.det(rot), 1.0)
        # each looks at the origin (down its -Z), its image's up never pointing down
        looked_at = poses[:, :3, 3] - distance * poses[:, :3, 2]
        np.testing.assert_allclose(looked_at, 0.0, atol=1e-12)
        assert (poses[:, 2, 1] >= 0).all()
        heights = poses[:, 2, 3]
        assert (heights >= 0).all() if hemisphere else (heights < 0).any()
    # straight down: a fallback up, still a rotation
    down = look_at_origin(np.array([0.0, 0.0, 1.0]), 2.0)
    np.testing.assert_allclose(down[:3, :3].T @ down[:3, :3], np.eye(3), atol=1e-12)
    # the unit sphere fits the narrower (vertical) field of view with 10% to spare
    half_y = math.atan(math.tan(0.5 * CAMERA_ANGLE_X) * 30 / 40)
    assert math.asin(1 / distance) == pytest.approx(half_y / 1.1, rel=0.02)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"objects": ["teapot"]}, r"no mesh named 'teapot'.*meshes: blue, green, red"),
        ({"objects": [7]}, r"no mesh named 7 and no instance 7"),
        ({"objects": []}, r"objects: expected a non-empty list"),
        ({"views_val": 0}, r"views_val: expected an integer in \[1"),
        ({"resolution": (0, 8)}, r"resolution: expected"),
        ({"spp": 0}, r"spp: expected"),
        ({"device": "tpu"}, r"device: expected one of"),
        ({"resolution": 4096, "views_train": 10_000}, r"Mpixel"),
    ],
)
def test_export_refuses_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(NerfExportError, match=match):
        export_dataset(sphere_scene(), tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_the_command_line(cpu, tmp_path: Path, capsys, monkeypatch) -> None:
    parser = argparse.ArgumentParser()
    add_dataset_arguments(parser)
    scene = tmp_path / "scene.json"
    scene.write_text(json.dumps(sphere_scene()))
    args = parser.parse_args(
        [
            *(str(scene), "-o", str(tmp_path / "ds"), "--views", "1,1,1", "--resolution", "8x6"),
            *("--spp", "1", "--objects", "blue", "--device", "cpu", "--quiet"),
        ]
    )
    assert args.views == (1, 1, 1) and args.resolution == (8, 6) and args.objects == ["blue"]
    assert cmd_nerf_dataset(args) == 0
    assert "wrote" in capsys.readouterr().out
    assert load_dataset(tmp_path / "ds", "val").images.shape == (1, 6, 8, 4)
    with pytest.raises(SystemExit):
        parser.parse_args([str(scene), "-o", "x", "--views", "1,1"])


# --- the public layout and broken datasets ---------------------------------------------
def write_public_dataset(root: Path, sizes=((4, 4), (4, 4), (4, 4))) -> dict:
    """A NeRF-synthetic style dataset: file paths without extension, RGBA PNGs, the
    train split's last frame an RGB PNG named with its extension."""
    rng = np.random.default_rng(1)
    (root / "train").mkdir(parents=True)
    frames = []
    for i, (w, h) in enumerate(sizes):
        rgb_only = i == len(sizes) - 1
        pixels = rng.integers(0, 256, (h, w, 3 if rgb_only else 4), dtype=np.uint8)
        iio.imwrite(root / "train" / f"r_{i}.png", pixels)
        c2w = np.eye(4)
        c2w[:3, 3] = [0.0, -4.0 + i, 1.0]
        name = f"./train/r_{i}" + (".png" if rgb_only else "")
        frames.append({"file_path": name, "rotation": 0.0126, "transform_matrix": c2w.tolist()})
    doc = {"camera_angle_x": 0.6911112070083618, "frames": frames}
    (root / "transforms_train.json").write_text(json.dumps(doc))
    return doc


def test_reads_the_public_layout(tmp_path: Path) -> None:
    doc = write_public_dataset(tmp_path)
    data = load_dataset(tmp_path, "train")
    assert data.images.shape == (3, 4, 4, 4) and data.images.dtype == np.float32
    raw = iio.imread(tmp_path / "train" / "r_0.png")
    np.testing.assert_array_equal(data.images[0], raw / np.float32(255))  # not linearised
    np.testing.assert_array_equal(data.images[2, ..., 3], 1.0)  # no alpha: opaque
    np.testing.assert_array_equal(data.c2w[1], doc["frames"][1]["transform_matrix"])
    assert data.has_alpha and data.camera_angle_x == doc["camera_angle_x"]
    assert data.focal == pytest.approx(cameras.focal_length(4, doc["camera_angle_x"]))
    np.testing.assert_array_equal(data.aabb, DEFAULT_AABB)
    # public scenes are +Z up: by default their fields stand upright in +Y-up scenes
    np.testing.assert_array_equal(data.scene_from_dataset, SCENE_FROM_Z_UP)
    assert SCENE_FROM_Z_UP[:3, :3] @ np.array([0.0, 0.0, 1.0]) == pytest.approx([0, 1, 0])
    assert data.file_paths[0] == str(tmp_path / "train" / "r_0.png")
    white = composite(data.images, 1.0)
    a = data.images[..., 3:]
    np.testing.assert_allclose(white, data.images[..., :3] * a + 1 - a, atol=1e-6)
    hash_before = dataset_hash(tmp_path)
    raw[0, 0, 0] ^= 1
    iio.imwrite(tmp_path / "train" / "r_0.png", raw)
    assert dataset_hash(tmp_path) != hash_before


def _edit(key: str, value):
    def edit(root: Path, doc: dict) -> None:
        if value is _DELETE:
            del doc[key]
        else:
            doc[key] = value

    return edit


_DELETE = object()


def _matrix(m) -> callable:
    def edit(root: Path, doc: dict) -> None:
        doc["frames"][1]["transform_matrix"] = m

    return edit


def _missing_image(root: Path, doc: dict) -> None:
    (root / "train" / "r_1.png").unlink()


def _mixed_sizes(root: Path, doc: dict) -> None:
    iio.imwrite(root / "train" / "r_1.png", np.zeros((5, 4, 4), np.uint8))


def _not_png(root: Path, doc: dict) -> None:
    (root / "train" / "r_1.png").write_bytes(b"not an image")


_SINGULAR = [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
_NAN = [[1, 0, 0, float("nan")], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
_SCALED = [[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0], [0, 0, 0, 1]]


@pytest.mark.parametrize(
    ("edit", "culprit", "match"),
    [
        (_edit("frames", _DELETE), "transforms_train.json", "missing key 'frames'"),
        (_edit("frames", []), "transforms_train.json", "the list is empty"),
        (_edit("camera_angle_x", _DELETE), "transforms_train.json", "missing key 'camera_angle_x'"),
        (_edit("camera_angle_x", 4.0), "transforms_train.json", r"in \(0, pi\)"),
        (_edit("aabb", [[1, 1, 1], [0, 0, 0]]), "transforms_train.json", "min < max"),
        (_matrix(_SINGULAR), "transforms_train.json", "not invertible"),
        (
            _matrix(_NAN),
            "transforms_train.json",
            r"frames\[1\].transform_matrix\[0\]\[3\]: expected a finite",
        ),
        (_matrix(_SCALED), "transforms_train.json", "not a rotation"),
        (_matrix([[1, 0, 0], [0, 1, 0], [0, 0, 1]]), "transforms_train.json", "4 rows of 4"),
        (_missing_image, "transforms_train.json", r"image .*r_1.png not found"),
        (_mixed_sizes, "r_1.png", "must share one size"),
        (_not_png, "r_1.png", "not a readable image"),
    ],
)
def test_broken_datasets_are_one_error_naming_the_file(tmp_path, edit, culprit, match) -> None:
    doc = write_public_dataset(tmp_path)
    edit(tmp_path, doc)
    (tmp_path / "transforms_train.json").write_text(json.dumps(doc))
    with pytest.raises(NerfDatasetError, match=match) as info:
        load_dataset(tmp_path, "train")
    message = str(info.value)
    assert str(tmp_path) in message and culprit in message and "\n" not in message


def test_too_large_a_split_is_refused(tmp_path: Path, monkeypatch) -> None:
    write_public_dataset(tmp_path)
    monkeypatch.setattr(dataset_module, "MAX_DATASET_PIXELS", 40)
    with pytest.raises(NerfDatasetError, match=r"transforms_train.json: 3 images of 4x4 are"):
        load_dataset(tmp_path, "train")


def test_missing_and_unreadable_transforms(tmp_path: Path) -> None:
    with pytest.raises(NerfDatasetError, match="dataset folder not found"):
        load_dataset(tmp_path / "absent", "train")
    with pytest.raises(NerfDatasetError, match=r"transforms_val.json: transforms file not found"):
        load_dataset(tmp_path, "val")
    (tmp_path / "transforms_train.json").write_text('{"camera_angle_x": 0.7, "frames": [')
    with pytest.raises(NerfDatasetError, match=r"transforms_train.json: invalid JSON at line 1"):
        load_dataset(tmp_path, "train")
    with pytest.raises(NerfDatasetError, match="unknown split"):
        load_dataset(tmp_path, "training")
