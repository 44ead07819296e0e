"""The GPU targets, checked on machines without a GPU: the kernels go through a standalone
slangc (from the slangtorch wheel) to CUDA C++ and through nvcc to PTX for sm_90, and to
SPIR-V for Vulkan, so a shader change that only breaks a GPU target fails here, not on a
GPU machine later.

Skipped when slangtorch's slangc or nvcc is not installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

KERNELS = [
    ("integrators/path_tracer.slang", "render_pass"),
    ("materials/material_query.slang", "material_query"),
    ("scene/trace_rays.slang", "trace_rays"),
    ("neural/neural_query.slang", "neural_query"),
    ("fields/hash_grid_query.slang", "hash_grid_query"),
    ("fields/nerf_query.slang", "nerf_query"),
    ("integrators/wavefront.slang", "wave_intersect"),
    ("integrators/wavefront.slang", "wave_shade"),
]
# Kernels that evaluate neural decoders or march NeRF volumes: their PTX must hold
# tensor-core matrix products (the coherent-warp path of shaders/neural/coop_mlp.slang and
# the lockstep march of shaders/fields/nerf.slang), so that path cannot rot.
# wave_intersect marches volumes only, nerf_query fields only: each one's mma is theirs.
TENSOR_CORE_KERNELS = {
    "render_pass",
    "material_query",
    "neural_query",
    "nerf_query",
    "wave_intersect",
    "wave_shade",
}


def _slangc() -> Path:
    slangtorch = pytest.importorskip("slangtorch")
    path = Path(slangtorch.__file__).parent / "bin" / "slangc"
    if not path.is_file():
        pytest.skip("slangtorch carries no slangc")
    return path


@pytest.mark.parametrize("module, entry", KERNELS, ids=[k[1] for k in KERNELS])
def test_kernel_compiles_to_ptx(tmp_path: Path, module: str, entry: str) -> None:
    ptx = _compile_to_ptx(tmp_path, module, entry).read_text()
    assert ".entry" in ptx
    if entry in TENSOR_CORE_KERNELS:
        # mma.sync.aligned.m16n8k16 with fp16 inputs and fp32 accumulation
        assert "mma.sync" in ptx and ".f32.f16.f16.f32" in ptx, f"{entry}: no tensor-core mma"


PER_LANE_KERNELS = [k for k in KERNELS if k[1] in ("neural_query", "nerf_query", "wave_intersect")]


@pytest.mark.parametrize("module, entry", PER_LANE_KERNELS, ids=[k[1] for k in PER_LANE_KERNELS])
def test_per_lane_only_build_has_no_tensor_core_path(
    tmp_path: Path, module: str, entry: str
) -> None:
    # NRENDER_NEURAL_PER_LANE_ONLY (neural_mlp="per-lane") must remove the path from
    # materials and volumes alike, or the per-lane/tensor-core comparisons (`nrender
    # bench`, the `gpu` parity tests) compare the tensor cores with themselves.
    ptx = _compile_to_ptx(tmp_path, module, entry, ["-DNRENDER_NEURAL_PER_LANE_ONLY=1"]).read_text()
    assert "mma.sync" not in ptx


@pytest.mark.parametrize("module, entry", KERNELS, ids=[k[1] for k in KERNELS])
def test_kernel_compiles_to_spirv(tmp_path: Path, module: str, entry: str) -> None:
    # The Vulkan target, likewise (Slang's own SPIR-V emitter; the wheel has no glslang).
    spv = tmp_path / f"{entry}.spv"
    _run_slangc(
        module,
        entry,
        spv,
        ["-target", "spirv", "-emit-spirv-directly", "-O0", "-DNRENDER_DEVICE_VULKAN=1"],
    )
    assert spv.read_bytes()[:4] == b"\x03\x02\x23\x07"  # the SPIR-V magic number


def _run_slangc(module: str, entry: str, out: Path, options: list[str]) -> None:
    slangc = _slangc()
    proc = subprocess.run(
        [
            str(slangc),
            str(REPO / "shaders" / module),
            "-I",
            str(REPO / "shaders"),
            "-entry",
            entry,
            "-stage",
            "compute",
            *options,
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, LD_LIBRARY_PATH=str(slangc.parent)),
        timeout=300,
    )
    assert proc.returncode == 0 and out.is_file(), proc.stderr[-4000:]


def _compile_to_ptx(tmp_path: Path, module: str, entry: str, defines: list[str] = ()) -> Path:
    slangc = _slangc()
    nvcc = shutil.which("nvcc") or next(
        (p for p in ("/usr/local/cuda/bin/nvcc",) if os.path.exists(p)), None
    )
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    cu = tmp_path / f"{entry}.cu"
    _run_slangc(module, entry, cu, ["-target", "cuda", "-DNRENDER_DEVICE_CUDA=1", *defines])
    ptx = tmp_path / f"{entry}.ptx"
    proc = subprocess.run(
        [
            nvcc,
            "-arch=sm_90",
            "-std=c++17",
            "-DSLANG_CUDA_ENABLE_HALF=1",
            "-w",
            # NVVM at -O1: the check is that the CUDA code compiles to PTX with its
            # tensor-core instructions; full optimisation of the path tracer (NeRF
            # volumes included) took 348 s of a 2-core VM, -O1 3.4 s
            "-Xcicc",
            "-O1",
            f"-I{slangc.parent.parent / 'include'}",
            "-ptx",
            str(cu),
            "-o",
            str(ptx),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return ptx
