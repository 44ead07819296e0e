"""Layered and refracting materials inside the path tracer, against closed forms: in a
constant environment of radiance 1, a lossless object must look exactly like the
environment, whatever light does inside it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import assert_mean_close, furnace_sphere_scene

from renderer import Renderer, load_scene
from renderer.device import RenderDevice


def furnace_with(material: dict[str, Any], max_depth: int, spp: int = 16) -> dict[str, Any]:
    scene = furnace_sphere_scene(resolution=24, spp=spp, max_depth=max_depth)
    scene["materials"] = {"m": material}
    scene["instances"][0]["material"] = "m"
    scene["integrator"]["layered_depth"] = 64
    scene["integrator"]["rr_depth"] = max_depth
    return scene


CASES = {
    # White Lambert under a clear, non-absorbing coat: every bounce inside the stack is
    # counted, so its albedo is exactly one; one bounce off the convex sphere suffices.
    "coated_white": (
        {"base": [{"type": "diffuse", "albedo": 1}], "layers": [{"ior": 1.5}]},
        1,
    ),
    # Smooth glass: light refracts in and out; radiance scaling cancels on the way out.
    # The sphere is faceted, so total internal reflection can trap light for a long time:
    # 48 bounces lose 0.9% of it, 256 none measurable.
    "smooth_glass": ({"base": [{"type": "dielectric", "ior": 1.5}]}, 256),
}


@pytest.mark.parametrize("name", list(CASES))
def test_lossless_material_vanishes_in_a_furnace(cpu: RenderDevice, name: str) -> None:
    graph, depth = CASES[name]
    scene = furnace_with({"type": "layered", "graph": {"version": 1, **graph}}, depth)
    result = Renderer(load_scene(scene), cpu).render()
    on_sphere = result.depth > 0
    assert on_sphere.sum() > 100
    values = result.radiance[on_sphere][:, 0]
    variances = result.variance[on_sphere][:, 0]
    assert_mean_close(values, variances, 1.0)


def test_layered_sphere_estimators_agree(cpu: RenderDevice) -> None:
    """MIS, light sampling and BSDF sampling see the same layered material under a sky."""
    scene = furnace_with(
        {"type": "layered", "path": "materials/coated_plastic.json"}, max_depth=2, spp=24
    )
    scene["environment"] = {"type": "sky", "resolution": [64, 32], "sun_angle": 6.0}
    from conftest import REPO

    means = {}
    for strategy in ("mis", "nee", "bsdf"):
        scene["integrator"]["strategy"] = strategy
        result = Renderer(load_scene(scene, base_dir=REPO), cpu).render()
        mask = result.depth > 0
        red, red_var = result.radiance[mask][:, 0], result.variance[mask][:, 0]
        means[strategy] = (red.mean(), np.sqrt(red_var.sum()) / red.size)
    m, s = means["mis"]
    for other in ("nee", "bsdf"):
        o, so = means[other]
        assert abs(m - o) < 5 * np.hypot(s, so), f"mis {m} vs {other} {o}"
