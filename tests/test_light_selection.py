"""Light selection for next-event estimation (renderer/render/light_selection.py): how
often the environment is sampled instead of an emissive triangle. Any probability in
(0, 1) is unbiased when sampling and MIS use the same one; the estimate only moves noise."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_mean_close
from test_integrator import lit_stage

from renderer import Renderer, load_scene
from renderer.render.light_selection import bounding_sphere_probability


def ground_stage(ground: float, spp: int = 32) -> dict:
    """The integrator tests' lit stage (a box and a ball on a plane) with a 0.8 m lamp on a
    `ground`-metre plane, under a dim sky with a low sun: near the objects the lamp gives
    more light than the sky."""
    scene = lit_stage(spp)
    scene["integrator"]["seed"] = 5
    scene["environment"].update(
        sun_angle=10.0, sun_radiance=30.0, sun_direction=[-0.6, 0.3, 0.4], scale=0.3
    )
    scene["materials"]["lamp"]["emission"] = 20.0
    scene["meshes"]["floor"]["size"] = [ground, ground]
    scene["meshes"]["ball"].update(segments=16, rings=8)
    scene["meshes"]["lamp"]["size"] = [0.8, 0.8]
    return scene


def old_probability(renderer: Renderer) -> float:
    """The bounding-sphere selection nrender used before."""
    buffers = renderer.buffers
    return bounding_sphere_probability(
        renderer.scene.environment, buffers.bounds, buffers.emitter_lights
    )


def test_strategies_agree_with_the_new_selection(cpu) -> None:
    # Catches: next-event estimation or MIS using a selection probability other than the
    # one sampling used (e.g. emitter_pdf without the 1 - environment_probability factor,
    # or a host that uploads one probability for sampling and another for the pdfs):
    # NEE-only and MIS then weight the lamp or the sky wrongly and leave the BSDF-only
    # image by many standard errors. The selection is mid-range here, so both factors count.
    renderer = Renderer(load_scene(ground_stage(8.0, spp=128)), cpu)
    p_env = renderer.buffers.stats.environment_probability
    assert 0.15 < p_env < 0.85, p_env
    results = {s: renderer.render(strategy=s) for s in ("mis", "nee", "bsdf")}
    for a, b in (("mis", "nee"), ("mis", "bsdf"), ("nee", "bsdf")):
        ra, rb = results[a], results[b]
        diff = float(ra.radiance.mean() - rb.radiance.mean())
        se = float(np.sqrt(ra.variance.sum() + rb.variance.sum()) / ra.radiance.size)
        assert abs(diff) < 5 * se, f"{a} vs {b}: image means differ by {diff} (se {se})"
    # The BSDF-only image does not depend on the selection at all: an anchor for the others.
    assert_mean_close(
        results["nee"].radiance, results["nee"].variance, results["bsdf"].radiance.mean(), z=6
    )


def test_huge_ground_does_not_make_the_sky_win(cpu) -> None:
    # Catches: the bounding-sphere power estimate (or any global power ratio), under which
    # a 200 m ground makes the sky "brighter" than a lamp that lights everything the camera
    # sees: p_env = 0.9997 here. The probability must follow the irradiance each light type
    # delivers where the camera looks, computed here by hand: at the patch under the lamp
    # the sky gives pi L minus what the lamp's back hides, the lamp Le x its form factor.
    sky, le, side, height = 0.5, 40.0, 0.5, 2.0
    scene = {
        "version": 1,
        # A 4-degree view of the ground straight under the lamp, from the side.
        "camera": {
            "position": [2.5, 1.0, 0],
            "look_at": [0, 0, 0],
            "fov": 4,
            "resolution": [16, 16],
        },
        "environment": {"type": "constant", "radiance": sky},
        "materials": {
            "ground": {"type": "diffuse", "albedo": 0.5},
            "lamp": {"type": "diffuse", "albedo": 0.0, "emission": le},
        },
        "meshes": {
            "ground": {"type": "plane", "size": [200, 200]},
            "lamp": {"type": "plane", "size": [side, side]},
        },
        "instances": [
            {"mesh": "ground", "material": "ground"},
            {
                "mesh": "lamp",
                "material": "lamp",
                "transform": {"translate": [0, height, 0], "rotate": [180, 0, 0]},
            },
        ],
    }
    renderer = Renderer(load_scene(scene), cpu)
    # Projected solid angle of the lamp from the point below it: midpoint rule, 200^2 cells.
    n = 200
    x = (np.arange(n) + 0.5) / n * side - side / 2
    r2 = x[:, None] ** 2 + x[None, :] ** 2 + height**2
    form = float((height**2 / r2**2).sum() * (side / n) ** 2)  # cos cos / d^2 dA
    e_lamp = le * form
    e_sky = sky * (np.pi - form)
    expected = 0.05 + 0.9 * e_sky / (e_sky + e_lamp)  # the defensive 10% even split
    assert 0.35 < expected < 0.42  # the scene is what the comment says
    assert old_probability(renderer) > 0.999
    # 0.008: the lamp's irradiance varies ~2% over the viewed patch (~0.004 in p), plus
    # sampling noise (measured: 0.0028 off). Without the defensive split p is 0.011 off.
    assert renderer.buffers.stats.environment_probability == pytest.approx(expected, abs=0.008)


def test_ground_plane_variance_well_below_the_old_selection(cpu) -> None:
    # Catches: a selection that over-picks the environment on large ground planes again
    # (the bounding-sphere estimate picks it with p = 0.69 on this 12 m ground, the new one
    # 0.29). Measured here (32x24, 32 spp, seeds 1-2): old/new variance 3.8; asserting 2x
    # leaves room. (Larger grounds differ more, 39x at 100 m in
    # tools/light_selection_study.py.)
    renderer = Renderer(load_scene(ground_stage(12.0)), cpu)
    p_new = renderer.buffers.stats.environment_probability
    p_old = old_probability(renderer)
    assert p_old > 0.65 and p_new < 0.4, (p_old, p_new)
    variance = {}
    for name, p in (("old", p_old), ("new", p_new)):
        renderer.buffers.lights["environment_probability"] = p
        variance[name] = float(np.mean([renderer.render(seed=s).variance.mean() for s in (1, 2)]))
    assert variance["old"] > 2 * variance["new"], variance


def test_next_event_reaches_a_lamp_over_a_huge_ground(cpu) -> None:
    # Catches: shadow rays that reach the light they aim at. Their origin is pushed off the
    # surface by an offset that grows with the scene (1e-3 on this 100 m ground), which can
    # bring the light's own surface epsilon / cos_light closer than the sampled distance;
    # a shadow ray that stopped at distance * (1 - 1e-4) then hit the light and NEE lost
    # it (0.080 against BSDF sampling's 0.131). Direct light only, lamp only: NEE and BSDF
    # sampling must give the same image.
    scene = ground_stage(100.0, spp=128)
    scene["environment"] = {"type": "constant", "radiance": 0.0}
    scene["instances"] = [scene["instances"][0], scene["instances"][3]]
    del scene["materials"]["red"], scene["meshes"]["block"], scene["meshes"]["ball"]
    renderer = Renderer(load_scene(scene), cpu)
    nee = renderer.render(strategy="nee", max_depth=1)
    bsdf = renderer.render(strategy="bsdf", max_depth=1)
    assert_mean_close(nee.radiance, nee.variance + bsdf.variance, bsdf.radiance.mean())
