"""Renders and bakes on a Ray cluster (renderer/render/cluster.py, neural/cluster_bake.py):
a local Ray with 2 CPUs gives the image of one process bit for bit (in several tiles),
retries a lost actor's tile exactly, needs no scene file on the workers, and bad --cluster
values are one line."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import ray
from conftest import furnace_sphere_scene
from test_bake import CONDUCTOR, TINY

from renderer.cli import main
from renderer.errors import NrenderError
from renderer.image_io import read_image, write_ldr
from renderer.materials import load_material
from renderer.neural import NeuralMaterial
from renderer.neural.cluster_bake import bake_task, prepare, write_outputs
from renderer.neural.parameters import material_hash
from renderer.neural.presets import PRESETS
from renderer.render import cluster
from renderer.render.cluster import ClusterRenderJob
from renderer.render.workers import ParallelRenderJob
from renderer.scene import load_scene

AOVS = ("radiance", "variance", "albedo", "normal", "depth")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray of 2 CPUs for the module (it takes ~7 s to start)."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    yield ray
    ray.shutdown()


def _scene_file(tmp_path: Path) -> Path:
    path = tmp_path / "sphere.json"
    # albedo 0.73, not 0.5: radiance 0.5^k sums exactly, in any order, and would hide
    # blocks added in the wrong order
    path.write_text(json.dumps(furnace_sphere_scene(resolution=32, albedo=0.73, spp=64)))
    return path


def _render(job):  # type: ignore[no-untyped-def]
    try:
        while not job.done:
            job.step()
        return job.result()
    finally:
        job.close()


def _one_process(scene, **settings):  # type: ignore[no-untyped-def]
    return _render(ParallelRenderJob(scene, "cpu", workers=1, **settings))


def _assert_same_image(a, b) -> None:  # type: ignore[no-untyped-def]
    assert a.spp == b.spp
    for name in AOVS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


@pytest.fixture(scope="module")
def sphere(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The test scene (32x24, as --res makes it: the file says 32x32) and its image by one
    process at 192 spp, seed 3: three blocks of 64 spp."""
    scene = load_scene(_scene_file(tmp_path_factory.mktemp("sphere")))
    scene.camera.resolution = (32, 24)
    return scene, _one_process(scene, spp=192, seed=3)


@pytest.fixture(scope="module")
def wide_sphere(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The test scene at 48x32 and its image by one process at 192 spp, seed 3: five
    blocks of 42 spp (a pass of 1536 pixels); a band of 8 rows would make three of 64."""
    scene = load_scene(_scene_file(tmp_path_factory.mktemp("wide")))
    scene.camera.resolution = (48, 32)
    return scene, _one_process(scene, spp=192, seed=3)


def test_tiled_image_is_bit_identical_even_when_an_actor_dies(
    local_ray, wide_sphere, monkeypatch
) -> None:
    # Catches: blocks cut by a tile's pixels instead of the image's (per pixel other
    # float64 additions), a pixel seeded by its index in the tile, actors that render with
    # the scene file's settings instead of the caller's (seed, spp, --res), and a tile
    # lost with its actor (the image lacks it) or continued after the restart instead of
    # rendered again. Tiles go highest first and one actor dies while it holds one.
    def highest_first(self: ClusterRenderJob) -> int:
        self._free.sort()
        return self._free.pop()

    monkeypatch.setattr(ClusterRenderJob, "_next_tile", highest_first)
    scene, expected = wide_sphere
    job = ClusterRenderJob(scene, "cpu", workers=2, spp=192, seed=3, bands=4)
    try:
        job.wait_ready()  # so that both actors take tiles
        job.step()  # hands out passes: both actors hold a tile
        victim = next(s for s in job._slots if s.held)
        ray.kill(victim.handle, no_restart=False)  # as a crashed process: Ray restarts it
        for _ in range(600):
            if job.done:
                break
            job.step()
        result = job.result()
    finally:
        job.close()
    _assert_same_image(result, expected)
    assert victim.restarts >= 1 and len(job.blocks) == 5
    assert job.tiles == [(0, y, 48, 8) for y in (0, 8, 16, 24)] and job.tiles_done == 4
    assert job.spp_done == 192 and sum(job.samples_by_worker.values()) == 192 * 48 * 32
    assert result.radiance.shape == (32, 48, 3) and result.radiance.std() > 0.01
    assert result.info["seed"] == 3 and result.info["workers"] == 2


def test_bands_cover_the_image_a_few_per_actor() -> None:
    # Catches: bands that miss or repeat rows, or a band per actor (the last to finish
    # would leave the others idle), or tiny bands on a short render.
    assert cluster.bands_of_rows(16, 12, 8) == [
        (0, y, 16, h)
        for y, h in zip((0, 2, 4, 6, 8, 9, 10, 11), (2, 2, 2, 2, 1, 1, 1, 1), strict=True)
    ]
    assert len(cluster.tile_bands(1920, 1080, 64, 256)) == 256
    assert cluster.tile_bands(32, 24, 2, 192) == [(0, 0, 32, 24)]  # 147k samples: one


def test_the_scene_travels_in_memory_not_as_files(local_ray, tmp_path: Path) -> None:
    # Catches: actors that read the scene's files (scene.source, textures, meshes) on the
    # worker: on a machine that does not share this file system they do not exist. Here
    # they are deleted before the actors start.
    folder = tmp_path / "scene"
    (folder / "maps").mkdir(parents=True)
    texture = (np.random.default_rng(1).random((8, 8, 3)) * 255).astype(np.uint8)
    write_ldr(folder / "maps" / "albedo.png", texture)
    (folder / "quad.obj").write_text(
        "v -1 -1 0\nv 1 -1 0\nv 1 1 0\nv -1 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\n"
        "f 1/1 2/2 3/3\nf 1/1 3/3 4/4\n"
    )
    document = furnace_sphere_scene(resolution=16, spp=64)
    document["materials"]["grey"]["albedo"] = {"type": "image", "path": "maps/albedo.png"}
    document["meshes"]["ball"] = {"type": "file", "path": "quad.obj"}
    (folder / "scene.json").write_text(json.dumps(document))
    scene = load_scene(folder)
    expected = _one_process(scene, spp=64)
    shutil.rmtree(folder)
    result = _render(ClusterRenderJob(scene, "cpu", workers=1, spp=64))
    _assert_same_image(result, expected)
    assert len(np.unique(result.albedo.reshape(-1, 3), axis=0)) > 8  # the texture is there


def test_an_absurdly_large_scene_is_refused(local_ray, tmp_path: Path, monkeypatch) -> None:
    # Catches: a scene of many GiB put into the object store of every node, filling them.
    monkeypatch.setattr(cluster, "MAX_SCENE_BYTES", 1000)
    scene = load_scene(_scene_file(tmp_path))
    with pytest.raises(NrenderError, match=r"sphere\.json: \d+ MiB in memory .* 0 MiB"):
        ClusterRenderJob(scene, "cpu", workers=1)


def test_cli_render_on_a_local_ray_writes_the_one_process_image(
    local_ray, sphere, tmp_path: Path
) -> None:
    # Catches: --cluster losing --spp, --seed or --res on the way to the actors, or the
    # command writing something else than the image of one process.
    _, expected = sphere
    argv = ["render", str(_scene_file(tmp_path)), "--device", "cpu", "--res", "32x24"]
    argv += ["--spp", "192", "--seed", "3", "--cluster", "local", "--workers", "2"]
    assert main([*argv, "--out", str(tmp_path / "ray"), "--quiet"]) == 0
    assert np.array_equal(read_image(tmp_path / "ray.exr"), expected.radiance)


def test_ctrl_c_keeps_every_actors_samples(local_ray, tmp_path: Path, monkeypatch, capsys) -> None:
    # Catches: a stop that drops the actors' partial tiles, so that the image holds fewer
    # samples than the bar counted, or a partial tile written with another tile's counts
    # (its pixels must be divided by their own). Tiles then hold different counts.
    jobs: list[ClusterRenderJob] = []
    receive = ClusterRenderJob._receive

    def receive_then_interrupt(self, timeout):  # type: ignore[no-untyped-def]
        receive(self, timeout)
        if self.tiles_done and not jobs:  # a first whole tile
            jobs.append(self)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(ClusterRenderJob, "_receive", receive_then_interrupt)
    monkeypatch.setattr(cluster, "_MIN_TILE_SAMPLES", 1)  # eight bands of 16x12
    out = tmp_path / "part"
    argv = ["render", str(_scene_file(tmp_path)), "--device", "cpu", "--cluster", "local"]
    argv += ["--workers", "2", "--res", "16x12", "--spp", "3000", "--out", str(out), "--quiet"]
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 130, err
    job = jobs[0]
    assert len(job.tiles) == 8 and 1 <= job.tiles_done < 8
    counts = job._sums[2][..., 3]  # samples of each pixel
    per_tile = [np.unique(counts[y0 : y0 + h]) for _, y0, _, h in job.tiles]
    assert all(len(c) == 1 for c in per_tile)  # a tile's pixels hold the same samples
    assert 3000 in counts and counts.min() < 3000
    assert counts.sum() == job._samples == sum(job.samples_by_worker.values())  # the bar's
    assert f"interrupted after {job.spp_done} (mean) of 3000 spp, some pixels " in err
    image = read_image(out.with_suffix(".exr"))
    assert image.shape == (12, 16, 3) and np.isfinite(image).all()
    assert np.array_equal(image > 0, (counts > 0)[..., None].repeat(3, axis=2))
    # Column 0 sees only the environment, radiance 1: any tile divided by another's
    # sample count would not be exactly 1 there.
    np.testing.assert_array_equal(image[:, 0][counts[:, 0] > 0], 1.0)


def test_wavefront_schedule_is_refused(local_ray, sphere) -> None:
    # Catches: a wavefront cluster render silently rendering whole images per tile.
    with pytest.raises(NrenderError, match=r"--schedule wavefront: .* megakernel"):
        ClusterRenderJob(sphere[0], "cpu", workers=1, schedule="wavefront")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nowhere", "expected auto, local, HOST:PORT"),
        ("host:0", "expected auto, local, HOST:PORT"),
        ("ray://host:99999", "expected auto, local, HOST:PORT"),
        ("127.0.0.1:1", "nothing answers at 127.0.0.1:1"),
    ],
)
def test_bad_cluster_address_is_one_line_exit_2(
    value: str, message: str, tmp_path: Path, capsys
) -> None:
    # Catches: a typo reaching ray.init (which retries an address where nothing listens
    # for minutes, printing as it goes) or a traceback instead of one line.
    argv = ["render", str(_scene_file(tmp_path)), "--device", "cpu", "--cluster", value]
    try:
        status = main(argv)
    except SystemExit as exc:
        status = exc.code  # type: ignore[assignment]
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and message in err[0], err


def test_without_ray_the_error_says_what_to_install(tmp_path: Path, monkeypatch, capsys) -> None:
    # Catches: an ImportError traceback when the optional extra is not installed.
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails
    status = main(["render", str(_scene_file(tmp_path)), "--cluster", "auto"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and 'pip install "nrender[cluster]"' in err[0], err


def _textured_material(folder: Path) -> Path:
    """The test conductor with its roughness read from an image file in a subfolder."""
    (folder / "maps").mkdir(parents=True)
    rough = (np.random.default_rng(2).random((16, 16, 3)) * 255).astype(np.uint8)
    write_ldr(folder / "maps" / "rough.png", rough)
    document = json.loads(CONDUCTOR.read_text())
    document["textures"]["roughness"] = {"type": "image", "path": "maps/rough.png", "srgb": False}
    path = folder / "rough.json"
    path.write_text(json.dumps(document))
    return path


def test_a_bake_task_needs_only_the_files_that_travel(tmp_path: Path, monkeypatch) -> None:
    # Catches: a task sent the material file without the textures it reads (the bake
    # fails on a worker that does not share this file system: here they are deleted
    # before it runs), and a bake whose .nmat names the worker's temporary copy.
    monkeypatch.chdir(tmp_path)
    source = _textured_material(Path("library"))
    expected_hash = material_hash(load_material(source))
    job = prepare(source, Path("baked/rough.nmat"), TINY, "cpu", "cpu", 0)
    shutil.rmtree("library")
    answer = bake_task(job)
    assert Path.cwd() == tmp_path
    assert sorted(answer["files"]) == ["rough.lobes.png", "rough.nmat", "rough.report.json"]
    assert answer["report"]["material"] == "library/rough.json"
    written = write_outputs(Path("baked/rough.nmat"), answer["files"])
    assert sorted(p.name for p in Path("baked").iterdir()) == sorted(p.name for p in written)
    material = NeuralMaterial.load(Path("baked/rough.nmat"))
    assert material.metadata["source"] == "library/rough.json"
    assert material.metadata["source_hash"] == expected_hash  # the texture's content travelled


def test_a_bake_task_with_absolute_paths_stays_in_its_mirror(tmp_path: Path, monkeypatch) -> None:
    # Catches: a task handed the driver's absolute paths: on a worker without this file
    # system it reads a material that is not there (deleted here before the task runs)
    # and writes its outputs outside its temporary mirror.
    monkeypatch.chdir(tmp_path)
    source = _textured_material(tmp_path / "library").resolve()
    output = (tmp_path / "elsewhere" / "rough.nmat").resolve()
    job = prepare(source, output, TINY, "cpu", "cpu", 0)
    shutil.rmtree(tmp_path / "library")
    answer = bake_task(job)
    assert sorted(answer["files"]) == ["rough.lobes.png", "rough.nmat", "rough.report.json"]
    assert not output.parent.exists()  # nothing written outside the mirror


def test_cli_bake_all_on_a_local_ray(local_ray, tmp_path: Path, monkeypatch, capsys) -> None:
    # Catches: outputs not written back on this machine, a material that failed on its
    # worker ending the others (or printing a traceback), and unchanged materials baked
    # again.
    monkeypatch.setitem(PRESETS, "quick", TINY)
    library, out = tmp_path / "library", tmp_path / "baked"
    library.mkdir()
    (library / "a.json").write_text(CONDUCTOR.read_text())
    broken = json.loads(CONDUCTOR.read_text())
    broken["base"][0]["roughness"] = "nowhere"
    (library / "broken.json").write_text(json.dumps(broken))
    argv = ["bake", "--all", str(library), "-o", str(out), "--preset", "quick", "--quiet"]
    argv += ["--device", "cpu", "--reference-device", "cpu", "--cluster", "local"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "broken.json" in captured.err and "1 material(s) failed" in captured.err
    assert "Traceback" not in captured.err and f"a.json -> {out / 'a.nmat'}" in captured.out
    source = NeuralMaterial.load(out / "a.nmat").metadata["source"]
    assert Path(os.path.abspath(source)) == library / "a.json"  # relative to this folder
    assert (out / "a.report.json").exists() and not list(out.glob(".*"))  # no temporaries
    (library / "broken.json").unlink()
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith(f"skip {library / 'a.json'}")
