"""NeRF fields in torch: volume rendering against Beer-Lambert, the occupancy grid's
carving, `.nfield` files (round trip and every broken file), quick training on a tiny
nrender-rendered dataset, exact resume after a stop, and the `nrender nerf` commands."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import nerf_fixtures
import numpy as np
import pytest
import torch

from renderer.cli import main
from renderer.fields.dataset import load_dataset
from renderer.fields.dataset_export import export_dataset
from renderer.fields.hash_grid import HashGridConfig
from renderer.fields.marching import TRANSMITTANCE_STOP, render_rays
from renderer.fields.nerf import NerfConfig, NerfField
from renderer.fields.nfield import NerfFieldError, NerfFile
from renderer.fields.occupancy import OccupancyGrid
from renderer.fields.training import (
    PRESETS,
    TrainingInterrupted,
    train_field,
)
from renderer.neural.metrics import ssim

SMALL = NerfConfig(
    grid=HashGridConfig(levels=4, features=2, log2_table=12, base_resolution=4, max_resolution=64),
    density_width=16,
    color_width=16,
    occupancy_resolution=16,
    march_steps=64,
)
BOX = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])


def constant_field(sigma: float, rgb: tuple[float, float, float]) -> NerfField:
    return nerf_fixtures.constant_field(SMALL, sigma, rgb).field


def test_ssim_of_constant_images_is_the_luminance_term():
    # Catches a wrong constant or window normalisation: for flat images SSIM reduces to
    # (2ab + C1) / (a^2 + b^2 + C1) exactly.
    a, b = 0.3, 0.6
    x, y = np.full((16, 16, 3), a), np.full((16, 16, 3), b)
    c1 = 0.01**2
    assert ssim(x, y) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-9)
    noise = np.random.default_rng(0).random((16, 16, 3))
    assert ssim(noise, noise) == pytest.approx(1.0)
    assert ssim(noise, 1.0 - noise) < 0.0  # anti-correlated structure


def test_marching_follows_beer_lambert():
    # Catches a missing step length in the optical depth, a wrong box intersection or an
    # off-by-one lattice: a constant density sigma over a chord of length L leaves
    # T = exp(-sigma L), up to one step of lattice rounding.
    sigma = 0.7
    field = constant_field(sigma, (0.2, 0.5, 0.8))
    origins = torch.tensor([[0.0, 0.0, 3.0], [0.5, 0.2, 3.0], [0.0, 0.0, 0.0], [3.0, 3.0, 3.0]])
    dirs = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    chords = torch.tensor([2.0, 2.0, 1.0, 0.0])  # the third starts inside; the last misses
    bg = torch.tensor([0.0, 1.0, 0.0])
    color, transmittance = render_rays(field, None, origins, dirs, bg, torch.full((4,), 0.5))
    expected = torch.exp(-sigma * chords)
    slack = sigma * field.step
    assert (transmittance - expected).abs().max() <= expected.max() * (math.exp(slack) - 1) + 1e-6
    # what is not transmitted shows the volume's colour
    rgb = torch.tensor([0.2, 0.5, 0.8])
    want = (1 - transmittance)[:, None] * rgb + transmittance[:, None] * bg
    assert torch.allclose(color, want, atol=1e-5)


def test_early_stop_makes_dense_volumes_opaque():
    # Catches early termination leaking background: once T falls below 0.01 the ray is
    # opaque, exactly, as the path tracer treats it.
    field = constant_field(2.65, (0.9, 0.1, 0.1))  # T = exp(-5.3) = 0.005 across the box
    o, d = torch.tensor([[0.0, 0.0, 3.0]]), torch.tensor([[0.0, 0.0, -1.0]])
    _, t_free = render_rays(field, None, o, d, torch.ones(3))
    assert 0.0 < t_free.item() < TRANSMITTANCE_STOP
    color, t_stop = render_rays(field, None, o, d, torch.ones(3), early_stop=True)
    assert t_stop.item() == 0.0
    # green: 0.1 (1 - T_k*) with k* the first sample whose T_k < 0.01; without early
    # termination the white background adds T (0.1 (1 - 0.005) + 0.005 = 0.1045), and
    # with the samples after k* still weighted it is 0.1 (1 - 0.005)
    optical = 2.65 * field.step
    k_stop = math.ceil(math.log(1.0 / TRANSMITTANCE_STOP) / optical)
    assert color[0, 1].item() == pytest.approx(0.1 * (1 - math.exp(-optical * k_stop)), abs=2e-6)


def test_empty_occupancy_cells_have_no_density():
    # Catches the occupancy test being ignored (or its cell index axes swapped): with
    # only the +x half occupied, a ray along x sees half the chord.
    field = constant_field(1.0, (0.5, 0.5, 0.5))
    grid = OccupancyGrid(SMALL.occupancy_resolution)
    grid.occupied = (grid.cells[:, 0] >= SMALL.occupancy_resolution // 2).clone()
    o, d = torch.tensor([[-3.0, 0.1, 0.1]]), torch.tensor([[1.0, 0.0, 0.0]])
    _, t = render_rays(field, grid, o, d, torch.zeros(3))
    assert t.item() == pytest.approx(math.exp(-1.0), rel=field.step * 1.5)
    grid.occupied = (grid.cells[:, 1] < SMALL.occupancy_resolution // 2).clone()
    _, t = render_rays(field, grid, o, d, torch.zeros(3))  # the ray is at y > 0: all empty
    assert t.item() == 1.0


CARVE_BALL = np.array([0.35, -0.2, 0.25])


def test_carving_keeps_the_object_and_empties_what_views_see_as_background():
    # Catches a carve that projects cells wrongly (it would empty the object itself, and
    # training could never recover it) or keeps everything (no speed-up).
    res, focal = 48, 60.0
    views = []
    for angle in np.linspace(0, 2 * np.pi, 6, endpoint=False):
        pos = np.array([3 * np.cos(angle), 3 * np.sin(angle), 1.0])
        fwd = -pos / np.linalg.norm(pos)
        right = np.cross(fwd, [0, 0, 1])
        right /= np.linalg.norm(right)
        m = np.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, np.cross(right, fwd), -fwd, pos
        views.append(m)
    c2w = np.stack(views)
    # alpha of a ball of radius 0.35 off the centre (a transposed or mirrored projection
    # would carve it), by ray casting through pixel centres
    ys, xs = np.mgrid[0:res, 0:res] + 0.5
    alpha = np.zeros((len(c2w), res, res), np.float32)
    for i, m in enumerate(c2w):
        d = np.stack([(xs - res / 2) / focal, -(ys - res / 2) / focal, -np.ones_like(xs)], -1)
        d = d @ m[:3, :3].T
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        o = m[:3, 3] - CARVE_BALL
        b = d @ o
        alpha[i] = (b * b - (o @ o - 0.35**2)) > 0
    grid = OccupancyGrid(16)
    share = grid.carve(alpha, c2w, focal, np.array([[-1.0] * 3, [1.0] * 3]))
    centres = (grid.cells.float() + 0.5) / 16 * 2 - 1
    radius = (centres - torch.from_numpy(CARVE_BALL).float()).norm(dim=-1)
    assert grid.hull[radius < 0.35].all()  # the object survives
    assert not grid.hull[radius > 1.0].any()  # what is far from it is carved
    assert 0.02 < share < 0.4


# --- .nfield files ---------------------------------------------------------------------


def saved_field(tmp_path: Path) -> Path:
    field = NerfField(SMALL, BOX, seed=3)
    grid = OccupancyGrid(SMALL.occupancy_resolution)
    grid.occupied[::5] = False
    meta = {"dataset": "d", "dataset_hash": "h", "preset": "{}", "training": "{}"}
    path = tmp_path / "f.nfield"
    NerfFile(field, grid, np.diag([2.0, 2.0, 2.0, 1.0]), meta).save(path)
    return path


def test_nfield_round_trip(tmp_path):
    path = saved_field(tmp_path)
    loaded = NerfFile.load(path)
    original = NerfField(SMALL, BOX, seed=3)
    x = torch.rand(64, 3) * 2 - 1
    d = torch.nn.functional.normalize(torch.randn(64, 3), dim=-1)
    for a, b in zip(original(x, d), loaded.field(x, d), strict=True):
        assert torch.equal(a, b)
    assert loaded.occupancy.occupied.sum() == SMALL.occupancy_resolution**3 - len(range(0, 4096, 5))
    assert np.array_equal(loaded.scene_from_field, np.diag([2.0, 2.0, 2.0, 1.0]))


def rewrite(path: Path, tensors: dict | None = None, meta: dict | None = None) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as f:
        old_meta = dict(f.metadata())
        old = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    old.update(tensors or {})
    old_meta.update(meta or {})
    save_file({k: v for k, v in old.items() if v is not None}, str(path), metadata=old_meta)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("truncate", "truncated or corrupt"),
        ("nan", "NaN or infinite"),
        ("shape", "has shape"),
        ("missing", "missing tensors"),
        ("format", "not a neural field"),
        ("architecture", "bad architecture"),
        ("box", "is not a box"),
        ("placement", "not an invertible affine"),
    ],
)
def test_broken_nfield_files_name_the_file(tmp_path, change, message):
    path = saved_field(tmp_path)
    if change == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif change == "nan":
        rewrite(path, {"density.layers.0.bias": torch.full((16,), float("nan"))})
    elif change == "shape":
        rewrite(path, {"grid.table": torch.zeros(4, 10, 2)})
    elif change == "missing":
        rewrite(path, {"color.layers.0.weight": None})
    elif change == "format":
        rewrite(path, meta={"format": "nrender.nmat"})
    elif change == "architecture":
        rewrite(path, meta={"architecture": json.dumps({"grid": {"levels": "many"}})})
    elif change == "box":
        rewrite(path, {"aabb": torch.tensor([[1.0, 1.0, 1.0], [0.0, 2.0, 2.0]])})
    elif change == "placement":
        rewrite(path, {"scene_from_field": torch.zeros(4, 4)})
    with pytest.raises(NerfFieldError, match=message) as info:
        NerfFile.load(path)
    assert str(path) in str(info.value)


# --- training on a dataset nrender renders -----------------------------------------------


def lit_scene() -> dict:
    """Two diffuse spheres under a sky-like environment and a small lamp: shading,
    not flat colours, so the field must learn view-dependent-free but varying colour."""
    return {
        "version": 1,
        "camera": {"position": [0, 0, 4], "look_at": [0, 0, 0], "fov": 40, "resolution": [8, 8]},
        "environment": {"type": "constant", "radiance": 0.6},
        "materials": {
            "clay": {"type": "diffuse", "albedo": [0.8, 0.35, 0.2]},
            "jade": {"type": "diffuse", "albedo": [0.2, 0.7, 0.4]},
            "lamp": {"type": "diffuse", "albedo": 0.0, "emission": [6.0, 6.0, 5.0]},
        },
        "meshes": {
            "big": {"type": "sphere", "radius": 0.5},
            "small": {"type": "sphere", "radius": 0.3},
            "bulb": {"type": "sphere", "radius": 0.08},
        },
        "instances": [
            {"mesh": "big", "material": "clay", "transform": {"translate": [0.35, 0, 0]}},
            {"mesh": "small", "material": "jade", "transform": {"translate": [-0.45, 0.15, 0.2]}},
            {"mesh": "bulb", "material": "lamp", "transform": {"translate": [0.0, 0.75, 0.4]}},
        ],
    }


@pytest.fixture(scope="module")
def dataset(cpu, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("nerf_train") / "lit"
    export_dataset(
        lit_scene(),
        out,
        views_train=24,
        views_val=1,
        views_test=3,
        resolution=32,
        spp=8,
        device=cpu,
    )
    return out


# The quick preset, scaled to 32x32 views: a short run with smaller batches.
TEST_PRESET = replace(PRESETS["quick"], steps=150, batch_rays=256, checkpoint_seconds=1e9)
# Measured on these views over white: the carved but untrained field 19.2 dB, 100 steps
# 26.6 dB, 300 steps 29.3 dB (SSIM 0.90). The bar sits between with margin on both sides.
PSNR_BAR_DB = 24.0


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("nerf_field") / "lit.nfield"
    return out, train_field(dataset, out, TEST_PRESET, device="cpu", progress=False)


def test_quick_training_reaches_the_psnr_bar(trained, dataset):
    # Catches anything that breaks learning (wrong ray directions or pixel centres,
    # background not composited, occupancy carving the object away, a broken optimiser
    # step): the trained field must beat the bar, an untrained one must not.
    path, result = trained
    evaluation = result.report["evaluation"]
    assert evaluation["split"] == "test" and evaluation["views"] == 3
    assert evaluation["psnr_db"] > PSNR_BAR_DB, evaluation
    assert 0.0 < evaluation["ssim"] <= 1.0
    untrained = train_field(
        dataset, path.with_name("untrained.nfield"), replace(TEST_PRESET, steps=0), progress=False
    )
    assert untrained.report["evaluation"]["psnr_db"] < PSNR_BAR_DB
    # the files a user gets
    report = json.loads(path.with_name("lit.report.json").read_text())
    assert report["evaluation"]["psnr_db"] == pytest.approx(evaluation["psnr_db"])
    assert path.with_name("lit.test_000.png").exists()
    loaded = NerfFile.load(path)
    assert json.loads(loaded.metadata["training"])["steps"] == TEST_PRESET.steps
    assert Path(loaded.metadata["dataset"]).is_absolute()  # nerf render runs from anywhere
    assert np.allclose(loaded.scene_from_field, load_dataset(dataset, "train").scene_from_dataset)


def test_resume_after_a_stop_repeats_the_uninterrupted_run(dataset, tmp_path):
    # Catches checkpoints that drop state (Adam moments, occupancy densities, the step
    # count, the random stream): a run stopped at step 5 and resumed must end with the
    # very weights of a run that never stopped.
    preset = replace(TEST_PRESET, steps=9, batch_rays=64, occupancy_interval=4)
    straight = train_field(dataset, tmp_path / "a.nfield", preset, device="cpu", progress=False)
    calls = iter(range(100))
    with pytest.raises(TrainingInterrupted):
        train_field(
            dataset,
            tmp_path / "b.nfield",
            preset,
            device="cpu",
            progress=False,
            stop=lambda: next(calls) >= 5,
        )
    assert (tmp_path / "b.nfield.ckpt").exists() and not (tmp_path / "b.nfield").exists()
    with pytest.raises(Exception, match="--resume"):
        train_field(dataset, tmp_path / "b.nfield", preset, device="cpu", progress=False)
    resumed = train_field(
        dataset, tmp_path / "b.nfield", preset, device="cpu", progress=False, resume=True
    )
    assert not (tmp_path / "b.nfield.ckpt").exists()
    for a, b in zip(straight.file.field.parameters(), resumed.file.field.parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(straight.file.occupancy.density, resumed.file.occupancy.density)


def test_a_stop_during_the_evaluation_keeps_the_field_and_a_partial_report(dataset, tmp_path):
    # Catches a Ctrl-C that only takes effect after every test view is rendered (long at
    # 800x800), and a partial report that claims the mean of views it never rendered.
    out = tmp_path / "s.nfield"
    asked_after_saving = []

    def stop() -> bool:  # false while training; true from the second evaluation view on
        if out.exists():
            asked_after_saving.append(True)
        return len(asked_after_saving) >= 2

    preset = replace(TEST_PRESET, steps=3, batch_rays=64)
    result = train_field(dataset, out, preset, device="cpu", progress=False, stop=stop)
    evaluation = result.report["evaluation"]
    assert evaluation["stopped"] and evaluation["views"] == 1 and evaluation["views_in_split"] == 3
    assert evaluation["psnr_db"] == pytest.approx(evaluation["psnr_db_per_view"][0], abs=1e-3)
    assert NerfFile.load(out).metadata["training"]  # the field is whole
    report = json.loads(out.with_name("s.report.json").read_text())
    assert report["evaluation"]["stopped"] is True


def test_cli_render_and_errors(trained, tmp_path, capsys, monkeypatch):
    path, _ = trained
    monkeypatch.chdir(tmp_path)  # the field finds its dataset from another folder
    out = tmp_path / "views"
    assert main(["nerf", "render", str(path), "-o", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["views"] == 3 and metrics["psnr_db"] > PSNR_BAR_DB
    assert sorted(p.name for p in out.glob("*.png")) == [
        "test_000.png",
        "test_001.png",
        "test_002.png",
    ]
    assert (
        main(
            ["nerf", "render", str(path), "-o", str(out), "--background", "transparent", "--quiet"]
        )
        == 0
    )
    import imageio.v3 as iio

    assert iio.imread(out / "test_000.png").shape == (32, 32, 4)
    capsys.readouterr()
    assert main(["nerf", "train", str(tmp_path / "nowhere"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere" in err
    broken = tmp_path / "broken.nfield"
    broken.write_bytes(b"not a field")
    assert main(["nerf", "render", str(broken), "-o", str(out), "--quiet"]) == 2
    assert "broken.nfield" in capsys.readouterr().err


def test_scene_camera_sees_the_field_where_the_objects_were(trained, cpu, tmp_path):
    # Catches a wrong placement (scene_from_dataset inverted or applied twice, the +Y/+Z
    # turn lost, a vertical field of view read as horizontal): the field rendered from the
    # scene's own camera covers the pixels the objects cover in nrender's render.
    import imageio.v3 as iio

    from renderer.render.renderer import Renderer
    from renderer.scene import load_scene

    document = lit_scene()
    document["camera"] = {
        "position": [0.4, 0.9, 3.2],
        "look_at": [0, 0.1, 0],
        "fov": 35,
        "resolution": [40, 30],
    }
    document["integrator"] = {"spp": 8, "transparent_background": True}
    scene_path = tmp_path / "scene.json"
    scene_path.write_text(json.dumps(document))
    coverage = Renderer(load_scene(scene_path), cpu).render().coverage
    path, _ = trained
    out = tmp_path / "camera"
    assert (
        main(
            [
                *("nerf", "render", str(path), "-o", str(out), "--camera", str(scene_path)),
                *("--background", "transparent", "--quiet"),
            ]
        )
        == 0
    )
    alpha = iio.imread(out / "camera.png")[..., 3] / 255.0
    assert alpha.shape == coverage.shape
    mine, theirs = alpha > 0.5, coverage > 0.5
    iou = (mine & theirs).sum() / (mine | theirs).sum()
    assert iou > 0.8, iou


def test_transparent_background_renders_rgba(cpu, tmp_path):
    # Catches `transparent_background` reaching the kernel but not the files: the PNG
    # must carry coverage as alpha (0 where camera rays escape, 255 on the objects) and
    # the EXR an A layer.
    import imageio.v3 as iio
    import OpenEXR

    from renderer.render.renderer import Renderer
    from renderer.scene import load_scene

    document = lit_scene()
    document["camera"]["resolution"] = [24, 16]
    document["integrator"] = {"spp": 4, "transparent_background": True}
    scene_path = tmp_path / "scene.json"
    scene_path.write_text(json.dumps(document))
    result = Renderer(load_scene(scene_path), cpu).render()
    result.write_outputs(tmp_path / "t")
    rgba = iio.imread(tmp_path / "t.png")
    assert rgba.shape == (16, 24, 4)
    assert rgba[0, 0, 3] == 0 and rgba[8, 14, 3] == 255  # a corner; the clay sphere
    np.testing.assert_array_equal(rgba[..., 3], np.round(result.coverage * 255))
    with OpenEXR.File(str(tmp_path / "t.exr")) as exr:
        assert "RGBA" in exr.channels()  # the reader groups R, G, B and A


def test_dataset_of_a_scene_with_volumes_says_they_are_left_out(trained, cpu, tmp_path):
    # Catches volumes vanishing from a dataset without a word.
    from renderer.errors import NrenderWarning

    path, _ = trained
    document = lit_scene()
    document["volumes"] = [{"nerf": str(path), "transform": {"translate": [3, 0, 0]}}]
    with pytest.warns(NrenderWarning, match="1 NeRF volume"):
        summary = export_dataset(
            document,
            tmp_path / "d",
            views_train=1,
            views_val=1,
            views_test=1,
            resolution=8,
            spp=1,
            device=cpu,
        )
    assert summary.completed


def test_info_lists_volumes(trained, tmp_path, capsys):
    path, _ = trained
    document = lit_scene()
    document["volumes"] = [{"nerf": str(path)}]
    scene_path = tmp_path / "scene.json"
    scene_path.write_text(json.dumps(document))
    assert main(["info", str(scene_path), "--device", "cpu", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["volumes"] == 1 and info["volume_fields"][0]["nerf"] == str(path)
    assert main(["info", str(scene_path), "--device", "cpu"]) == 0
    assert "volume 0: nerf=" in capsys.readouterr().out
