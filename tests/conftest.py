"""Shared fixtures: one CPU device per test session (kernels compile once), GPU gating."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from renderer.device import RenderDevice, open_device

REPO = Path(__file__).resolve().parent.parent

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Workers share the cores: torch's default of one thread per core in every worker
    # oversubscribes them (the quick bake test ran 3x slower beside another worker).
    import torch

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def _gpu_kind() -> str | None:
    """CUDA, else Vulkan; NRENDER_TEST_GPU=vulkan (or cuda) picks one explicitly."""
    from renderer.device import _adapters

    wanted = os.environ.get("NRENDER_TEST_GPU")
    for kind in (wanted,) if wanted else ("cuda", "vulkan"):
        if _adapters(kind):
            return kind
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _gpu_kind() is not None:
        return
    skip = pytest.mark.skip(reason="no CUDA or Vulkan device on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cpu() -> RenderDevice:
    return open_device("cpu")


@pytest.fixture(scope="session")
def gpu() -> RenderDevice:
    kind = _gpu_kind()
    if kind is None:
        pytest.skip("no GPU device")
    return open_device(kind)


@pytest.fixture()
def out_dir(tmp_path: Path) -> Path:
    """Where a test writes images; NRENDER_TEST_OUTPUT keeps them for inspection."""
    keep = os.environ.get("NRENDER_TEST_OUTPUT")
    if keep:
        path = Path(keep)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path


def furnace_sphere_scene(
    resolution: int = 32, albedo: float = 0.5, spp: int = 16, max_depth: int = 4
) -> dict:
    """Flat-shaded (hence convex) diffuse sphere in a constant environment of radiance 1."""
    return {
        "version": 1,
        "camera": {
            "position": [0, 0, 4],
            "look_at": [0, 0, 0],
            "fov": 40,
            "resolution": [resolution, resolution],
        },
        "integrator": {"spp": spp, "max_depth": max_depth, "seed": 7},
        "environment": {"type": "constant", "radiance": 1.0},
        "materials": {"grey": {"type": "diffuse", "albedo": albedo}},
        "meshes": {"ball": {"type": "sphere", "smooth": False, "segments": 32, "rings": 16}},
        "instances": [{"mesh": "ball", "material": "grey"}],
    }


def assert_mean_close(
    values: np.ndarray, variances: np.ndarray, expected: float, z: float = 5.0
) -> None:
    """Mean of per-pixel estimates vs `expected`, within `z` standard errors of that mean."""
    mean = float(values.mean())
    se = float(np.sqrt(variances.sum()) / values.size)
    assert abs(mean - expected) <= z * se + 1e-6, f"mean {mean} vs {expected} (se {se})"


def record_read_keys(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every key a scene or material loader reads from now on (for the docs tests)."""
    from renderer.scene.reader import Section

    read: set[str] = set()
    original = Section.raw

    def recording_raw(self, key, default=Section.raw.__defaults__[0]):  # type: ignore[index]
        read.add(key)
        return original(self, key, default)

    monkeypatch.setattr(Section, "raw", recording_raw)
    return read
