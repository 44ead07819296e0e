"""`nrender` end to end, in subprocesses, on tiny images."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from renderer.image_io import read_image


def nrender(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "renderer", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_render_default_scene_writes_exr_and_png(tmp_path: Path) -> None:
    nrender("render", "--res", "32x24", "--spp", "2", "--out", "a/img", cwd=tmp_path)
    exr = read_image(tmp_path / "a" / "img.exr")
    png = read_image(tmp_path / "a" / "img.png")
    assert exr.shape == (24, 32, 3) and png.shape == (24, 32, 3)
    assert np.isfinite(exr).all() and exr.std() > 0.01 and png.std() > 0.01
    # Same seed, same image; another seed, another image.
    nrender("render", "--res", "32x24", "--spp", "2", "--out", "b", "--quiet", cwd=tmp_path)
    np.testing.assert_array_equal(read_image(tmp_path / "b.exr"), exr)
    nrender(
        "render",
        "--res",
        "32x24",
        "--spp",
        "2",
        "--seed",
        "5",
        "--out",
        "c",
        "--quiet",
        cwd=tmp_path,
    )
    assert not np.array_equal(read_image(tmp_path / "c.exr"), exr)


def test_exr_carries_aovs(tmp_path: Path) -> None:
    import OpenEXR

    nrender("render", "--res", "16x16", "--spp", "1", "--out", "x", "--quiet", cwd=tmp_path)
    channels = set(OpenEXR.File(str(tmp_path / "x.exr"), separate_channels=True).channels())
    layers = ("albedo", "normal", "variance")
    expected = {"R", "G", "B", "depth.Z"} | {f"{n}.{c}" for n in layers for c in "RGB"}
    assert channels == expected


def test_info(tmp_path: Path) -> None:
    out = nrender("info", "--json", "--device", "cpu", cwd=tmp_path).stdout
    import json

    info = json.loads(out)
    assert info["triangles"] > 1000 and info["lights"]["emitters"] > 0 and info["spheres"] == 2
    assert info["bvh"]["build_seconds"] >= 0 and info["device"].startswith("cpu")


def test_bad_scene_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(
        '{"version": 1, "camera": {"position": [0,0,1], "look_at": [0,0,0]}, "lamp": 1}'
    )
    proc = nrender("render", "s.json", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip() == "nrender: error: s.json: lamp: unknown or unused key 'lamp' "
        "(valid keys here: camera, environment, instances, integrator, materials, meshes, "
        "version, volumes)"
    )
    assert not list(tmp_path.glob("render.*"))


def test_hostile_inputs_are_one_line_errors(tmp_path: Path) -> None:
    # Catches: a RecursionError traceback from deeply nested JSON, and a mesh file given
    # as a scene reported as "invalid JSON" (the loaders' own tests cover the rest).
    (tmp_path / "deep.json").write_text(
        '{"version": 1, "camera": ' + "[" * 50000 + "]" * 50000 + "}"
    )
    (tmp_path / "mesh.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    for name, expected in (("deep.json", "nests deeper"), ("mesh.obj", "is not a scene")):
        proc = nrender("render", name, cwd=tmp_path, check=False)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and name in lines[0] and expected in lines[0], proc.stderr


def test_existing_output_survives_failed_render(tmp_path: Path) -> None:
    (tmp_path / "render.png").write_bytes(b"precious")
    proc = nrender("render", "missing.json", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert (tmp_path / "render.png").read_bytes() == b"precious"


def test_ctrl_c_writes_partial_image(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "renderer",
            "render",
            "--res",
            "24x16",
            "--spp",
            "1000000",
            "--out",
            "part",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        # Wait until samples are accumulating (the progress bar shows a rate), then interrupt.
        deadline = time.time() + 300
        seen = ""
        while "samples/s" not in seen and time.time() < deadline:
            seen += os.read(proc.stderr.fileno(), 4096).decode(errors="replace")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted after" in stderr
    image = read_image(tmp_path / "part.exr")
    assert image.shape == (16, 24, 3) and np.isfinite(image).all() and image.max() > 0
    assert (tmp_path / "part.png").is_file()


def test_render_material_preview_and_broken_material(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parent.parent
    material = repo / "materials" / "scratched_gold.json"
    nrender(
        "render",
        str(material),
        "--res",
        "24x18",
        "--spp",
        "1",
        "--out",
        "m",
        "--quiet",
        "--device",
        "cpu",
        cwd=tmp_path,
    )
    image = read_image(tmp_path / "m.exr")
    assert image.shape == (18, 24, 3) and np.isfinite(image).all()
    (tmp_path / "bad.json").write_text(
        '{"version": 1, "base": [{"type": "diffuse", "albedo": -1}]}'
    )
    proc = nrender("render", "bad.json", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "bad.json" in proc.stderr and "albedo" in proc.stderr


def test_render_materials_switch(tmp_path: Path) -> None:
    # The default scene's left sphere is layered brass with a bake: --materials neural
    # must change the image (catches a flag that is parsed but never reaches the kernel).
    common = ("render", "--res", "32x18", "--spp", "2", "--quiet")
    nrender(*common, "--out", "ref", cwd=tmp_path)
    nrender(*common, "--materials", "neural", "--out", "neu", cwd=tmp_path)
    ref, neu = read_image(tmp_path / "ref.exr"), read_image(tmp_path / "neu.exr")
    assert np.isfinite(neu).all() and not np.array_equal(ref, neu)
    bad = nrender(*common, "--materials", "fast", "--out", "x", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "--materials" in bad.stderr


def test_unwritable_output_fails_before_rendering(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a folder")
    proc = nrender(
        "render", "--res", "16x16", "--spp", "1", "--out", "taken/img", cwd=tmp_path, check=False
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "taken" in proc.stderr


def test_bench_materials_smoke(tmp_path: Path) -> None:
    # Every part of the benchmark runs and reports (numbers are not asserted).
    proc = nrender(
        "bench",
        "materials",
        "--device",
        "cpu",
        "--res",
        "16x16",
        "--spp",
        "1",
        "--material-queries",
        "64",
        "--out",
        "bench",
        cwd=tmp_path,
    )
    import json

    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["shading"]["materials"]["brass_verdigris"]["neural_us"] > 0
    assert set(report["scalability"]["ms_per_spp"]) == {"1", "4", "16"}
    assert report["coherence"]["per_depth"][0]["neural_events"] > 0
    assert "Neural vs layered" in (tmp_path / "bench.md").read_text() and "speedup" in proc.stdout


BAD_COMMANDS = [
    # flags outside the scene format's ranges, or not numbers at all
    ["render", "--seed", "-5"],
    ["render", "--seed", "9999999999"],
    ["render", "--max-depth", "-3"],
    ["render", "--max-depth", "5000"],
    ["render", "--spp", "99999999999"],
    ["render", "--spp", "9" * 5000],
    ["render", "--exposure", "nan"],
    ["render", "--exposure", "inf"],
    ["render", "--res", "0x10"],
    ["render", "--device", "tpu"],
    ["render", "--bogus"],
    ["compare", "x.json", "--seed", "-1"],
    ["bake", "x.json", "--seed", "1.5"],
    ["view", "--scale", "2"],
    ["bench", "--spp", "0"],
    ["bake", "missing.json"],  # one line: not also the default preset's CPU warning
    ["bake", "--all", "missing_folder"],
    # paths: missing scene, a mesh given as a scene, outputs that cannot be written
    ["render", "missing.json"],
    ["render", "mesh.obj"],
    ["render", "--out", "folder.png"],
    ["render", "--out", "/proc/nrender/out"],
]


def test_every_bad_flag_and_path_is_one_line_exit_2(tmp_path: Path, monkeypatch, capsys) -> None:
    # Catches: a flag the scene format would refuse reaching the renderer (a C++
    # bad_cast for a negative depth, a silent black image for exposure nan), argparse's
    # two-line usage errors, and an output path found unwritable only after the render.
    from renderer.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mesh.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    (tmp_path / "folder.png").mkdir()
    for argv in BAD_COMMANDS:
        try:
            status = main(argv)
        except SystemExit as exc:
            status = exc.code
        err = capsys.readouterr().err.strip().splitlines()
        assert status == 2, (argv, err)
        assert len(err) == 1 and err[0].startswith("nrender: error: "), (argv, err)
        assert len(err[0]) < 300, (argv, err)
    assert not list(tmp_path.glob("render.*"))
