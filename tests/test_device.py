"""Device layer: choice and errors, kernel loading, reflection layouts, the C++ kernel cache."""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import slangpy as spy
from conftest import REPO

from renderer import cxx_cache
from renderer.accel import TriangleQueries
from renderer.device import _adapters, _check_cpu_compiler, open_device
from renderer.errors import DeviceError


def test_pinned_slangpy_is_the_one_running() -> None:
    pin = re.search(r'"slangpy==([\d.]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    assert spy.__version__ == pin


def test_cpu_device_runs_explicit_compute_kernels(cpu) -> None:
    assert cpu.kind == "cpu"
    q = TriangleQueries(cpu, np.array([[[0, 0, 0], [1, 0, 0], [0, 1, 0]]], np.float32))
    hits = q.closest_hit(np.array([[0.25, 0.25, 1]]), np.array([[0, 0, -1]]))
    assert hits.primitive.tolist() == [0] and hits.t[0] == pytest.approx(1.0)
    np.testing.assert_allclose(hits.barycentrics[0], [0.25, 0.25], atol=1e-6)


def test_kernels_are_compiled_once(cpu) -> None:
    assert cpu.kernel("scene/trace_rays.slang", "trace_rays") is cpu.kernel(
        "scene/trace_rays.slang", "trace_rays"
    )


def test_unknown_kernel_parameter_is_an_error_not_a_crash(cpu) -> None:
    kernel = cpu.kernel("scene/trace_rays.slang", "trace_rays")
    with pytest.raises(KeyError, match="g_rayz"):
        kernel.dispatch((1, 1, 1), g_rayz=None)


def test_layouts_come_from_reflection(cpu) -> None:
    kernel = cpu.kernel("scene/trace_rays.slang", "trace_rays")
    node = kernel.dtype("BvhNode")
    assert node.names == ("bounds_min", "first_index", "bounds_max", "primitive_count")
    layout = kernel.program.layout
    assert node.itemsize == layout.get_type_layout(layout.find_type_by_name("BvhNode")).stride
    with pytest.raises(KeyError):
        kernel.dtype("NoSuchStruct")


def test_device_errors() -> None:
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        open_device("tpu")
    if not _adapters("cuda"):
        with pytest.raises(DeviceError, match="no cuda adapter"):
            open_device("cuda")
    if not _adapters("vulkan"):
        with pytest.raises(DeviceError, match="no vulkan adapter"):
            open_device("vulkan")


def test_missing_compiler_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DeviceError, match="needs g\\+\\+ or clang\\+\\+ on PATH"):
        _check_cpu_compiler()


def test_compiler_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fake compiler that counts its runs and "links" by copying the source.
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    counter = tmp_path / "runs"
    fake = real_dir / "g++"
    fake.write_text(
        f'#!/bin/sh\necho run >> "{counter}"\nout=""\nwhile [ $# -gt 0 ]; do\n'
        '  case "$1" in -o) out="$2"; shift;; *.cpp) src="$1";; esac; shift\ndone\n'
        'cp "$src" "$out"\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{real_dir}{os.pathsep}/usr/bin:/bin")
    bin_dir = cxx_cache.install_shim(tmp_path / "cache")
    assert os.environ["PATH"].split(os.pathsep)[0] == str(bin_dir)
    source = tmp_path / "k.cpp"
    source.write_text("int kernel() { return 1; }")

    def compile_to(name: str) -> bytes:
        out = tmp_path / name
        rc = cxx_cache.run_shim(
            [str(bin_dir), "g++", "-O2", "-o", str(out), "-shared", str(source)]
        )
        assert rc == 0
        return out.read_bytes()

    assert compile_to("a.so") == source.read_bytes()
    assert compile_to("b.so") == source.read_bytes()
    assert counter.read_text().count("run") == 1  # the second build came from the cache
    source.write_text("int kernel() { return 2; }")
    assert compile_to("c.so") == source.read_bytes()
    assert counter.read_text().count("run") == 2
    assert len(list((tmp_path / "cache" / "cxx").glob("*.so"))) == 2


def test_each_checkout_has_its_own_shims(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Catches: one shim folder for every checkout using the same cache. The last checkout
    # to open a device rewrote the shared shims, so another checkout's kernels were built
    # with its flags and header (or through a shim naming a deleted tree). Each copy of
    # cxx_cache.py must get its own shims, and leave the other's untouched; and a kernel
    # one checkout built must serve the other (the header's per-checkout path must not
    # enter the cache key).
    import importlib.util

    other = tmp_path / "other_checkout" / "cxx_cache.py"
    other.parent.mkdir()
    shutil.copyfile(cxx_cache.__file__, other)
    spec = importlib.util.spec_from_file_location("other_cxx_cache", other)
    assert spec is not None and spec.loader is not None
    other_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(other_module)
    saved = os.environ["PATH"]
    try:
        ours = cxx_cache.install_shim(tmp_path / "cache")
        theirs = other_module.install_shim(tmp_path / "cache")
    finally:
        os.environ["PATH"] = saved
    assert ours != theirs and ours.parent == theirs.parent == tmp_path / "cache" / "bin"
    assert str(Path(cxx_cache.__file__).resolve()) in (ours / "g++").read_text()
    assert str(other.resolve()) in (theirs / "g++").read_text()
    real_dir, counter = tmp_path / "real", tmp_path / "runs"
    real_dir.mkdir()
    (real_dir / "g++").write_text(
        f'#!/bin/sh\necho run >> "{counter}"\nout=""\nwhile [ $# -gt 0 ]; do\n'
        '  case "$1" in -o) out="$2"; shift;; *.cpp) src="$1";; esac; shift\ndone\n'
        'cp "$src" "$out"\n'
    )
    (real_dir / "g++").chmod(0o755)
    monkeypatch.setenv("PATH", f"{real_dir}{os.pathsep}/usr/bin:/bin")
    source = tmp_path / "k.cpp"
    source.write_text("int kernel() { return 3; }")
    for module, shims in ((cxx_cache, ours), (other_module, theirs)):
        args = [str(shims), "g++", "-O2", "-o", str(tmp_path / "k.so"), "-shared", str(source)]
        assert module.run_shim(args) == 0
    assert counter.read_text().count("run") == 1  # the other checkout's build was reused


def test_inline_min_max_match_libm(tmp_path: Path) -> None:
    # Catches: the kernels' inlined min/max (cxx_cache.CPU_MATH_HEADER, which replaces the
    # libm calls of Slang's CPU prelude) giving other results than fminf/fmaxf, e.g. a NaN
    # operand propagated instead of ignored, which would change how paths with a NaN end.
    import subprocess

    (tmp_path / "cpu_math.h").write_text(cxx_cache.CPU_MATH_HEADER)
    (tmp_path / "check.cpp").write_text(
        '#include "cpu_math.h"\n#include <cstdio>\n#undef fminf\n#undef fmaxf\n'
        "int main() {\n"
        "  const float v[] = {NAN, -INFINITY, -2.5f, -0.0f, 0.0f, 1e-40f, 3.0f, INFINITY};\n"
        "  int bad = 0;\n"
        "  for (float a : v) for (float b : v) {\n"
        "    float m = nrender_fminf(a, b), n = fminf(a, b);\n"
        "    float x = nrender_fmaxf(a, b), y = fmaxf(a, b);\n"
        "    bool same_min = (m == n) || (m != m && n != n);\n"
        "    bool same_max = (x == y) || (x != x && y != y);\n"
        "    bad += !same_min + !same_max;\n"
        "  }\n"
        '  printf("%d\\n", bad);\n'
        "  return 0;\n}\n"
    )
    from renderer.device import cache_dir

    # The real compiler, not the kernel-cache shim (which force-includes the header too).
    shims = os.path.abspath(cache_dir() / "bin")
    compiler = cxx_cache.find_real_compiler(os.environ.get("PATH", ""), shims)
    assert compiler is not None
    subprocess.run(
        [compiler, "-O3", str(tmp_path / "check.cpp"), "-o", str(tmp_path / "check")], check=True
    )
    assert subprocess.run([str(tmp_path / "check")], capture_output=True, text=True).stdout == "0\n"
