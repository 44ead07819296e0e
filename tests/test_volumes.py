"""NeRF volumes inside the path tracer (shaders/integrators/path.slang, fields/nerf.slang):
fields whose outputs are constants make the answers analytic."""

from __future__ import annotations

import copy
import json
import math
import pickle
from pathlib import Path

import nerf_fixtures
import numpy as np
import pytest
from nerf_fixtures import METADATA
from test_nerf_field import random_field

from renderer.errors import SceneError
from renderer.fields import HashGridConfig
from renderer.fields.nerf import DENSITY_RAW_MAX, NerfConfig
from renderer.fields.nfield import NerfFile
from renderer.image_io import srgb_to_linear
from renderer.render.renderer import Renderer
from renderer.render.workers import ParallelRenderJob
from renderer.scene import load_scene

TINY = NerfConfig(
    grid=HashGridConfig(levels=1, features=1, log2_table=4, base_resolution=1, max_resolution=1),
    density_width=4,
    geometry_features=1,
    color_width=4,
    color_layers=1,
    sh_degree=1,
    occupancy_resolution=4,
    march_steps=256,
)
OPAQUE = math.exp(DENSITY_RAW_MAX)  # the largest density a field has: alpha = 1 at once


def constant_field(sigma: float, srgb: list[float], occupied: bool = True) -> NerfFile:
    return nerf_fixtures.constant_field(TINY, sigma, srgb, occupied)


def save(nerf: NerfFile, path: Path) -> str:
    nerf.metadata = dict(METADATA)
    nerf.save(path)
    return path.name


def write(tmp_path: Path, scene: dict, name: str = "scene.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(scene))
    return path


def render(path: Path | dict, cpu, schedule: str = "megakernel", **kw):
    scene = load_scene(path)
    renderer = Renderer(scene, cpu)
    job = renderer.start(schedule=schedule, **kw)
    while not job.done:
        job.step()
    return job.result()


def stage(spp: int = 4, max_depth: int = 3, volumes: list | None = None) -> dict:
    """A floor, a block, a ball and a lamp under a sky: every kind of light path."""
    return {
        "version": 1,
        "camera": {
            "position": [0, 1.5, 4.0],
            "look_at": [0, 0.4, 0],
            "fov": 45,
            "resolution": [16, 12],
        },
        "integrator": {"spp": spp, "max_depth": max_depth, "seed": 3},
        "environment": {
            "type": "sky",
            "resolution": [32, 16],
            "sun_angle": 20.0,
            "sun_radiance": 6.0,
        },
        "materials": {
            "floor": {"type": "diffuse", "albedo": 0.6},
            "red": {"type": "diffuse", "albedo": [0.7, 0.2, 0.1]},
            "lamp": {"type": "diffuse", "albedo": 0.0, "emission": 4.0},
        },
        "meshes": {
            "floor": {"type": "plane", "size": [8, 8]},
            "block": {"type": "box", "size": [0.8, 0.8, 0.8]},
            "ball": {"type": "sphere", "radius": 0.5},
            "lamp": {"type": "plane", "size": [1.5, 1.5]},
        },
        "instances": [
            {"mesh": "floor", "material": "floor"},
            {
                "mesh": "block",
                "material": "red",
                "transform": {"translate": [-0.7, 0.4, 0], "rotate": [0, 25, 0]},
            },
            {"mesh": "ball", "material": "floor", "transform": {"translate": [0.8, 0.5, 0.2]}},
            {
                "mesh": "lamp",
                "material": "lamp",
                "transform": {"translate": [0.3, 2.0, 0.5], "rotate": [180, 0, 0]},
            },
        ],
        "volumes": volumes or [],
    }


# a box around the ball and part of the floor, block and lamp light
AROUND_BALL = {"translate": [0.6, 0.6, 0.2], "scale": [0.7, 0.6, 0.6]}


@pytest.mark.parametrize("kind", ["zero_density", "empty_occupancy"])
def test_a_volume_that_holds_nothing_changes_no_bit(cpu, tmp_path: Path, kind: str) -> None:
    # Catches: lattice offsets drawn from the path's random numbers (every later sample
    # of the path would change), a march that adds or attenuates where the density is
    # zero, coverage or AOVs changed by crossing a volume, and a scene with volumes
    # traced differently from one without.
    nerf = (
        constant_field(0.0, [0.9, 0.2, 0.1])
        if kind == "zero_density"
        else constant_field(OPAQUE, [0.9, 0.2, 0.1], occupied=False)
    )
    name = save(nerf, tmp_path / "nothing.nfield")
    plain = render(stage(), cpu)
    with_volume = render(
        write(tmp_path, stage(volumes=[{"nerf": name, "transform": AROUND_BALL}])), cpu
    )
    for aov in ("radiance", "variance", "albedo", "normal", "depth", "coverage"):
        np.testing.assert_array_equal(getattr(with_volume, aov), getattr(plain, aov), err_msg=aov)


def wall_scene(volumes: list, transparent: bool = False) -> dict:
    """A grey wall at z = 0 facing the camera at z = 4, lit by a white environment."""
    return {
        "version": 1,
        "camera": {"position": [0, 0, 4], "look_at": [0, 0, 0], "fov": 40, "resolution": [12, 12]},
        "integrator": {"spp": 2, "max_depth": 2, "seed": 1, "transparent_background": transparent},
        "environment": {"type": "constant", "radiance": 1.0},
        "materials": {"grey": {"type": "diffuse", "albedo": 0.5}},
        "meshes": {"wall": {"type": "plane", "size": [2, 2]}},
        "instances": [{"mesh": "wall", "material": "grey", "transform": {"rotate": [90, 0, 0]}}],
        "volumes": volumes,
    }


def test_an_opaque_volume_hides_the_wall_behind_it(cpu, tmp_path: Path) -> None:
    # Catches: field colours used as linear radiance (no sRGB decode: 0.5 would show as
    # 0.5, not 0.214), the surface behind an opaque volume still shaded (its light added
    # under the volume's colour), and coverage left 0 where a volume, not a surface,
    # covers a pixel of a transparent background.
    srgb = [0.8, 0.5, 0.2]
    name = save(constant_field(OPAQUE, srgb), tmp_path / "opaque.nfield")
    # a cube in front of the wall's centre, and one beside the wall (over the
    # transparent background)
    volumes = [
        {"nerf": name, "transform": {"translate": [0, 0, 1.0], "scale": 0.3}},
        {"nerf": name, "transform": {"translate": [0.95, 0, 1.0], "scale": 0.2}},
    ]
    result = render(write(tmp_path, wall_scene(volumes, transparent=True)), cpu)
    expected = srgb_to_linear(np.array(srgb))
    centre = result.radiance[5:7, 5:7].reshape(-1, 3)
    np.testing.assert_allclose(centre, np.tile(expected, (4, 1)), rtol=1e-5)
    assert np.all(result.albedo[5:7, 5:7] == 0)  # no surface was shaded there
    side = result.radiance[5:7, 11]  # the second cube, with nothing behind it
    np.testing.assert_allclose(side, np.tile(expected, (2, 1)), rtol=1e-5)
    assert np.all(result.coverage[5:7, 11] == 1) and np.all(result.albedo[5:7, 11] == 0)
    assert np.all(result.coverage[0, 10:] == 0)  # the background beside the wall


def test_a_volume_behind_a_wall_does_not_show(cpu, tmp_path: Path) -> None:
    # Catches: volumes marched past the surface hit (t_far not applied, or applied in
    # world units to a field-space march: with the 0.3 scale placement the volume in front
    # would vanish), so
    # a bright volume would shine through the wall.
    name = save(constant_field(OPAQUE, [1.0, 1.0, 1.0]), tmp_path / "bright.nfield")
    hidden = [{"nerf": name, "transform": {"translate": [0, 0, -0.4], "scale": [0.3, 0.3, 0.3]}}]
    plain = render(wall_scene([]), cpu)
    behind = render(write(tmp_path, wall_scene(hidden)), cpu)
    np.testing.assert_array_equal(behind.radiance, plain.radiance)
    # the same volume in front of the wall does show (so the test can fail)
    shown = copy.deepcopy(hidden)
    shown[0]["transform"]["translate"] = [0, 0, 0.4]
    front = render(write(tmp_path, wall_scene(shown), "front.json"), cpu)
    assert front.radiance[5:7, 5:7].min() > 0.99


def shadow_scene(volumes: list) -> dict:
    """A diffuse floor lit by a small lamp high above; the camera looks at the floor from
    below the height of any slab placed between them."""
    return {
        "version": 1,
        "camera": {
            "position": [0, 0.6, 3.5],
            "look_at": [0, 0, 0],
            "fov": 50,
            "resolution": [12, 10],
        },
        "integrator": {"spp": 8, "max_depth": 1, "seed": 5},
        "environment": {"type": "constant", "radiance": 0.0},
        "materials": {
            "floor": {"type": "diffuse", "albedo": 0.5},
            "lamp": {"type": "diffuse", "albedo": 0.0, "emission": 200.0},
        },
        "meshes": {
            "floor": {"type": "plane", "size": [8, 8]},
            "lamp": {"type": "plane", "size": [0.4, 0.4]},
        },
        "instances": [
            {"mesh": "floor", "material": "floor"},
            {
                "mesh": "lamp",
                "material": "lamp",
                "transform": {"translate": [0, 6, 0], "rotate": [180, 0, 0]},
            },
        ],
        "volumes": volumes,
    }


def test_a_slab_between_light_and_floor_darkens_it_by_beers_law(cpu, tmp_path: Path) -> None:
    # Catches: shadow rays not attenuated by volumes (the floor's direct light would not
    # darken, or only its BSDF-sampled part would), and a march in world units under a
    # scaled placement: the slab is 2 field units thick but 0.5 world units (scale 0.25
    # in y), so the floor must receive exp(-sigma * 2) = e^-1 of its light, not
    # exp(-sigma * 0.5) = 0.78; and a shadow ray's length not converted to field units
    # (the slab starts 12 field units up a shadow ray 6 world units long). The renders
    # with and without the slab share their random numbers, so their ratio is T itself,
    # up to the lattice's discreteness (147 or 148 samples of step 0.0135 across the
    # slab: +-0.4%), hence the 1% bound. Slanted shadow rays cross the same 2 field
    # units: the slab is stretched 80 times more sideways than up, so in field space
    # they are within 1 degree of vertical (1 / cos < 1.0002).
    sigma = 0.5
    name = save(constant_field(sigma, [0.0, 0.0, 0.0]), tmp_path / "slab.nfield")
    slab = [{"nerf": name, "transform": {"translate": [0, 3.25, 0], "scale": [20, 0.25, 20]}}]
    plain = render(write(tmp_path, shadow_scene([]), "plain.json"), cpu)
    shaded = render(write(tmp_path, shadow_scene(slab)), cpu)
    lit = plain.radiance > 1e-3
    assert lit.mean() > 0.5  # most pixels see the lit floor
    ratio = shaded.radiance[lit] / plain.radiance[lit]
    expected = math.exp(-sigma * 2.0)
    assert abs(ratio.mean() - expected) < 0.01 * expected, (ratio.mean(), expected)
    assert ratio.min() > 0.98 * expected and ratio.max() < 1.02 * expected


def mirror_scene(volumes: list, box_emission: float | list | None = None) -> dict:
    """A mirror floor seen from above at a slant; whatever sits at `ABOVE` the camera sees
    only in the mirror. Black environment, no lights."""
    scene = {
        "version": 1,
        "camera": {"position": [0, 1, 3], "look_at": [0, 0, 0], "fov": 30, "resolution": [16, 12]},
        "integrator": {"spp": 2, "max_depth": 2, "seed": 2},
        "environment": {"type": "constant", "radiance": 0.0},
        "materials": {
            "mirror": {
                "type": "layered",
                "graph": {
                    "version": 1,
                    "base": [{"type": "conductor", "reflectivity": 0.9, "roughness": 0.0}],
                },
            },
        },
        "meshes": {"floor": {"type": "plane", "size": [20, 20]}},
        "instances": [{"mesh": "floor", "material": "mirror"}],
        "volumes": volumes,
    }
    if box_emission is not None:
        scene["materials"]["glow"] = {"type": "diffuse", "albedo": 0.0, "emission": box_emission}
        scene["meshes"]["box"] = {"type": "box", "size": [2, 2, 2]}
        scene["instances"].append({"mesh": "box", "material": "glow", "transform": ABOVE})
    return scene


ABOVE = {"translate": [0, 1.7, -4.0], "scale": [1.0, 0.5, 1.0]}  # y in [1.2, 2.2]


def test_a_mirror_shows_the_volume(cpu, tmp_path: Path) -> None:
    # Catches: secondary rays that do not march volumes (the mirror would show black),
    # or that march them with the camera ray's state (depth 0 only). Reference: the same
    # scene with an emissive box of radiance srgb_to_linear(colour) where the volume is;
    # the mirror shows both alike.
    srgb = [0.3, 0.6, 0.9]
    name = save(constant_field(OPAQUE, srgb), tmp_path / "above.nfield")
    seen = render(write(tmp_path, mirror_scene([{"nerf": name, "transform": ABOVE}])), cpu)
    glow = srgb_to_linear(np.array(srgb)).tolist()
    reference = render(write(tmp_path, mirror_scene([], box_emission=glow), "box.json"), cpu)
    assert (reference.radiance.max(axis=-1) > 0.1).mean() > 0.15  # the mirror shows the box
    direct = render(
        write(tmp_path, mirror_scene([], box_emission=glow), "box2.json"), cpu, max_depth=0
    )
    assert direct.radiance.max() == 0  # the camera cannot see the box directly
    np.testing.assert_allclose(seen.radiance, reference.radiance, rtol=1e-4, atol=1e-6)


def test_the_nearer_of_two_volumes_shows_whatever_their_order(cpu, tmp_path: Path) -> None:
    # Catches: volumes composited in list order rather than in the order a ray enters
    # them (the far one would cover the near one when listed first).
    near = save(constant_field(OPAQUE, [1.0, 0.0, 0.0]), tmp_path / "near.nfield")
    far = save(constant_field(OPAQUE, [0.0, 0.0, 1.0]), tmp_path / "far.nfield")
    place = {
        "near": {"translate": [0, 0, 2.0], "scale": 0.2},
        "far": {"translate": [0, 0, 1.0], "scale": 0.5},
    }
    for order in (["near", "far"], ["far", "near"]):
        volumes = [{"nerf": {"near": near, "far": far}[k], "transform": place[k]} for k in order]
        result = render(write(tmp_path, wall_scene(volumes)), cpu)
        np.testing.assert_allclose(
            result.radiance[5:7, 5:7].reshape(-1, 3), [[1.0, 0.0, 0.0]] * 4, atol=1e-6
        )


@pytest.fixture(scope="module")
def cloud(tmp_path_factory) -> Path:
    """The stage with a random (trained-looking) field around the ball: real networks,
    partly empty occupancy, partly transparent."""
    folder = tmp_path_factory.mktemp("cloud")
    nerf = random_field(seed=11, occupied_share=0.7, density_offset=-1.0)
    nerf.metadata = dict(METADATA)
    nerf.save(folder / "cloud.nfield")
    volumes = [{"nerf": "cloud.nfield", "transform": {**AROUND_BALL, "rotate": [10, 30, 0]}}]
    return write(folder, stage(spp=3, volumes=volumes))


def test_both_schedules_give_the_same_image_with_a_volume(cpu, cloud: Path) -> None:
    # Catches: a volume crossed in one schedule and not the other (the wavefront crosses
    # them in wave_intersect, the megakernel before shading), a path state the wavefront
    # does not store after crossing, and lattice seeds that differ between the two.
    mega = render(cloud, cpu)
    wave = render(cloud, cpu, schedule="wavefront")
    assert not np.array_equal(mega.radiance, render(stage(spp=3), cpu).radiance)
    for aov in ("radiance", "albedo", "coverage"):
        np.testing.assert_array_equal(wave.__dict__[aov], mega.__dict__[aov], err_msg=aov)


def test_volumes_travel_to_workers_and_through_pickle(cpu, cloud: Path) -> None:
    # Catches: volumes dropped from a scene pickled for cluster actors (Ray sends the
    # loaded scene) or from a worker process's own load of the scene file.
    scene = load_scene(cloud)
    spp = 128  # two sample blocks (renderer/render/workers.py): one for the worker
    reference = Renderer(scene, cpu).render(spp=spp)
    travelled = Renderer(pickle.loads(pickle.dumps(scene)), cpu).render(spp=spp)
    np.testing.assert_array_equal(travelled.radiance, reference.radiance)
    images = []
    for workers in (1, 2):  # blocks add up in block order: the same image for any count
        job = ParallelRenderJob(scene, "cpu", workers=workers, spp=spp)
        try:
            job.wait_ready()
            while not job.done:
                job.step()
            images.append(job.result().radiance)
        finally:
            job.close()
    assert sum(n for w, n in job.samples_by_worker.items() if w > 0) > 0
    np.testing.assert_array_equal(images[1], images[0])
    assert np.abs(images[0] - reference.radiance).max() < 1e-5  # one block sum vs two


@pytest.mark.parametrize(
    "entry, message",
    [
        (
            {"nerf": "slab.nfield", "scale": 2},
            r"volumes\[0\]\.scale: unknown or unused key 'scale'",
        ),
        ({"transform": {}}, r"volumes\[0\]\.nerf: this key is required"),
        ({"nerf": "absent.nfield"}, r"volumes\[0\]\.nerf: .*absent\.nfield: no such file"),
        (
            {"nerf": "broken.nfield"},
            r"volumes\[0\]\.nerf: .*broken\.nfield: not a readable safetensors",
        ),
        ({"nerf": "scene.json"}, r"volumes\[0\]\.nerf: .*scene\.json: not a readable safetensors"),
        (
            {"nerf": "slab.nfield", "transform": {"scale": [1, 0, 1]}},
            r"volumes\[0\]\.transform: .*singular",
        ),
        (
            {"nerf": "slab.nfield", "transform": {"translate": [1e9, 0, 0]}},
            r"volumes\[0\]\.transform: .*reaches",
        ),
        ("slab.nfield", r"volumes\[0\]: expected an object"),
    ],
)
def test_bad_volumes_are_one_clear_error(tmp_path: Path, entry, message: str) -> None:
    # Catches: a bad volume entry reported late (at render time), as a traceback, or
    # without the scene file and key that hold it.
    save(constant_field(1.0, [0.5, 0.5, 0.5]), tmp_path / "slab.nfield")
    data = (tmp_path / "slab.nfield").read_bytes()
    (tmp_path / "broken.nfield").write_bytes(data[: len(data) // 2])
    path = write(tmp_path, wall_scene([entry]))
    with pytest.raises(SceneError, match=message) as info:
        load_scene(path)
    text = str(info.value)
    assert "\n" not in text and text.startswith(str(path))


def test_bench_reports_what_the_volumes_cost(cloud: Path) -> None:
    # Every part of the volume benchmark runs and reports (numbers are not asserted), and
    # a scene without volumes gets no such section.
    from renderer.bench import run_benchmarks

    report = run_benchmarks(
        scene_path=cloud, device="cpu", resolution=(16, 12), spp=1, bvh_triangles=0
    )
    volumes = report["volumes"]
    assert volumes["volumes"] == 1 and volumes["resolution"] == [16, 12]
    for schedule in ("megakernel", "wavefront"):
        frame = volumes["seconds_per_frame"][schedule]
        assert frame["with_volumes"] > 0 and frame["without_volumes"] > 0
        assert volumes["cost_ratio"][schedule] > 0
    assert "tensor_core" not in volumes  # CUDA only
    bare = write(cloud.parent, stage(spp=1), "bare.json")
    plain = run_benchmarks(
        scene_path=bare, device="cpu", resolution=(16, 12), spp=1, bvh_triangles=0
    )
    assert "volumes" not in plain
