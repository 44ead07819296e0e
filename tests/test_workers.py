"""Renders over several worker processes (renderer/render/workers.py): the same image for
any worker count, Ctrl-C keeps every worker's samples, and bad --workers are one line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import furnace_sphere_scene

from renderer.image_io import read_image
from renderer.render.workers import BlockSums, ParallelRenderJob, sample_blocks
from renderer.scene import load_scene


def _scene_file(tmp_path: Path) -> Path:
    path = tmp_path / "sphere.json"
    path.write_text(json.dumps(furnace_sphere_scene(resolution=32, spp=64)))
    return path


def test_image_is_bit_identical_for_any_worker_count(tmp_path: Path) -> None:
    # Catches: a worker process that rebuilds the render from the scene file and loses
    # the caller's seed or camera, one that renders a block from the wrong first sample,
    # and sums not cleared between blocks. (Adding blocks as they arrive: the next test.)
    scene = load_scene(_scene_file(tmp_path))
    scene.camera.resolution = (32, 24)  # as --res does; the file says 32x32
    results = []
    for workers in (1, 2, 3):
        job = ParallelRenderJob(scene, "cpu", workers=workers, spp=192, seed=3)
        try:
            job.wait_ready()  # so that the worker processes take blocks too
            while not job.done:
                job.step()
            results.append(job.result())
        finally:
            job.close()
        assert sum(n for w, n in job.samples_by_worker.items() if w > 0) > 0 or workers == 1
        assert sum(job.samples_by_worker.values()) == 192 and len(job.blocks) == 3
    for result in results[1:]:
        assert result.spp == 192
        for name in ("radiance", "variance", "albedo", "normal", "depth"):
            assert np.array_equal(getattr(result, name), getattr(results[0], name)), name
    assert results[0].radiance.shape == (24, 32, 3) and results[0].radiance.std() > 0.01


def test_blocks_are_added_in_block_order_whatever_order_they_arrive() -> None:
    # Catches: adding block sums as workers deliver them. Float addition is not
    # associative, so the image would change with timing and worker count.
    rng = np.random.default_rng(0)
    blocks = [
        [rng.normal(size=(2, 3, 4)) * 10.0 ** rng.integers(-9, 9, (2, 3, 4)) for _ in range(4)]
        for _ in range(5)
    ]
    in_order, shuffled = BlockSums(3, 2), BlockSums(3, 2)
    for i, block in enumerate(blocks):
        in_order.add(i, block)
    arrival = (3, 0, 4, 1, 2)
    for i in arrival:
        shuffled.add(i, blocks[i])
    assert in_order.merged == shuffled.merged == 5 and not shuffled.waiting
    as_arrived = sum((blocks[i][0] for i in arrival), np.zeros((2, 3, 4)))
    assert not np.array_equal(as_arrived, in_order.sums[0])  # the order does matter here
    for a, b in zip(in_order.sums, shuffled.sums, strict=True):
        assert np.array_equal(a, b)
    # blocks: at least a pass (64 spp at 32x24), at most 256, one on a GPU
    assert sample_blocks(192, 32 * 24, "cpu") == [(0, 64), (64, 128), (128, 192)]
    hd = sample_blocks(100_000, 1920 * 1080, "cpu")
    assert len(hd) == 256 and hd[0] == (0, 391) and hd[-1] == (99_705, 100_000)
    assert sample_blocks(1000, 768, "cuda") == [(0, 1000)]


def test_ctrl_c_keeps_every_workers_samples(tmp_path: Path, monkeypatch, capsys) -> None:
    # Catches: a stop that drops what worker processes had rendered (their partial blocks
    # in flight, or blocks waiting for an earlier one), so the image holds fewer samples
    # than were rendered, or an image whose pixels hold different sample counts.
    from renderer.cli import main

    jobs: list[ParallelRenderJob] = []
    store = ParallelRenderJob._store

    def store_then_interrupt(self, worker, block, sums) -> None:  # type: ignore[no-untyped-def]
        store(self, worker, block, sums)
        if worker > 0 and not jobs:  # a worker process's first block: press Ctrl-C
            jobs.append(self)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(ParallelRenderJob, "_store", store_then_interrupt)
    out = tmp_path / "part"
    argv = ["render", str(_scene_file(tmp_path)), "--device", "cpu", "--workers", "2"]
    status = main([*argv, "--res", "32x24", "--spp", "100000", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert status == 130, err
    done = int(re.search(r"interrupted after (\d+) of 100000 spp", err).group(1))  # type: ignore[union-attr]
    assert 0 < done < 100000 and done == jobs[0].spp_done == sum(jobs[0].samples_by_worker.values())
    image = read_image(out.with_suffix(".exr"))
    assert image.shape == (24, 32, 3) and np.isfinite(image).all()
    # The corners see only the environment, radiance 1: exactly 1 unless the samples were
    # divided by the wrong count (e.g. the requested spp instead of those rendered).
    np.testing.assert_array_equal(image[[0, 0, -1, -1], [0, -1, 0, -1]], 1.0)
    assert read_image(out.with_suffix(".png")).shape == (24, 32, 3)


def test_ctrl_c_from_a_terminal_reaches_only_the_parent(tmp_path: Path) -> None:
    # Catches: worker processes that die of the Ctrl-C a terminal sends to the whole
    # process group (a traceback each, their samples lost, a hang or a crash report).
    flags = ["--device", "cpu", "--workers", "2", "--spp", "100000", "--out", "part"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "renderer", "render", str(_scene_file(tmp_path)), *flags],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        deadline, seen = time.time() + 300, ""
        while "samples/s" not in seen and time.time() < deadline:
            chunk = os.read(proc.stderr.fileno(), 4096)  # type: ignore[union-attr]
            if not chunk:  # it ended before rendering: the assertions below say why
                break
            seen += chunk.decode(errors="replace")
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted after" in stderr and "Traceback" not in stderr, stderr
    assert np.isfinite(read_image(tmp_path / "part.exr")).all()


@pytest.mark.parametrize("value", ["0", "abc", "257", "-1"])
def test_bad_workers_flag_is_one_line_exit_2(value: str, capsys) -> None:
    from renderer.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["render", "--workers", value])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "--workers" in err[0], err
