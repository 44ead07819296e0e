"""Renders and bakes on a Ray cluster (renderer/render/cluster.py, neural/cluster_bake.py):
a local Ray with 2 CPUs gives the image of one process bit for bit, retries a lost
actor's block exactly, needs no scene file on the workers, and bad --cluster values are
one line."""

from __future__ import annotations

import json
import logging
import os
import re
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


def test_image_is_bit_identical_even_when_an_actor_dies(local_ray, sphere, monkeypatch) -> None:
    # Catches: actors that render with the scene file's settings instead of the caller's
    # (seed, spp, --res), and a block lost with its actor (the image lacks it). Blocks are
    # handed out highest first and one actor dies, so they arrive out of order and wait
    # for each other. (Adding them in arrival order would pass here: these few block sums
    # add exactly in float64; test_workers checks the order with sums that do not.)
    def highest_first(self: ClusterRenderJob) -> int:
        self._free.sort()
        return self._free.pop()

    monkeypatch.setattr(ClusterRenderJob, "_next_block", highest_first)
    scene, expected = sphere
    job = ClusterRenderJob(scene, "cpu", workers=2, spp=192, seed=3)
    try:
        job.wait_ready()  # so that both actors take blocks
        job.step()  # hands out passes: both actors hold a block
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
    assert victim.restarts >= 1 and len(job.blocks) == 3
    assert job.spp_done == 192 == sum(job.samples_by_worker.values())
    # the victim's block is rendered again after a later one: it arrives out of order
    assert job._sums.merged == 3 and not job._sums.waiting
    assert result.radiance.shape == (24, 32, 3) and result.radiance.std() > 0.01
    assert result.info["seed"] == 3 and result.info["workers"] == 2


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
    # Catches: a stop that drops the actors' partial blocks or the blocks waiting for an
    # earlier one, so that the image holds fewer samples than the bar counted, or pixels
    # that hold different sample counts.
    jobs: list[ClusterRenderJob] = []
    receive = ClusterRenderJob._receive

    def receive_then_interrupt(self, timeout):  # type: ignore[no-untyped-def]
        added = receive(self, timeout)
        if (self._sums.merged or self._sums.waiting) and not jobs:  # a first whole block
            jobs.append(self)
            os.kill(os.getpid(), signal.SIGINT)
        return added

    monkeypatch.setattr(ClusterRenderJob, "_receive", receive_then_interrupt)
    out = tmp_path / "part"
    argv = ["render", str(_scene_file(tmp_path)), "--device", "cpu", "--cluster", "local"]
    argv += ["--workers", "2", "--res", "16x12", "--spp", "100000", "--out", str(out), "--quiet"]
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 130, err
    done = int(re.search(r"interrupted after (\d+) of 100000 spp", err).group(1))  # type: ignore[union-attr]
    job = jobs[0]
    assert job.blocks[0] == (0, 391) and job.spp_done > 391  # partial blocks: 391 spp each
    assert 0 < done < 100000 and done == job.spp_done == sum(job.samples_by_worker.values())
    image = read_image(out.with_suffix(".exr"))
    assert image.shape == (12, 16, 3) and np.isfinite(image).all() and image.max() > 0


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
    assert NeuralMaterial.load(out / "a.nmat").metadata["source"] == str(library / "a.json")
    assert (out / "a.report.json").exists() and not list(out.glob(".*"))  # no temporaries
    (library / "broken.json").unlink()
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith(f"skip {library / 'a.json'}")
