"""The interactive viewer: the camera controller's math, the session it shows (progressive
accumulation, moving/resting resolution, reference | neural split, debug views,
screenshots) and, under a virtual X display (Xvfb + Mesa), the window with its input
handlers, HUD and clean shutdown."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from neural_fixtures import write_random_nmat

from renderer import load_scene
from renderer.scene.camera_file import save_camera
from renderer.scene.types import Camera
from renderer.viewer import DISPLAY_VIEWS
from renderer.viewer.camera_control import OrbitCamera
from renderer.viewer.debug_views import VIEWS

SIZE = (48, 32)


# --- camera controller ------------------------------------------------------------------
def test_orbit_keeps_the_distance_to_the_target() -> None:
    # Catches: orbiting about the camera (or the origin) instead of the target.
    orbit = OrbitCamera.from_camera(Camera(position=np.array([1.0, 2.0, 5.0]), look_at=np.ones(3)))
    before = np.linalg.norm(orbit.position() - orbit.target)
    for dx, dy in ((120, 0), (0, -80), (-37, 45)):
        orbit.orbit(dx, dy)
        assert np.linalg.norm(orbit.position() - np.ones(3)) == pytest.approx(before, rel=1e-12)
    assert np.allclose(orbit.target, np.ones(3))
    camera = orbit.to_camera()
    assert np.allclose(camera.look_at, np.ones(3))


@pytest.mark.parametrize("up", [(0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.3, 0.9, 0.1)])
def test_round_trip_from_a_scene_camera(up: tuple[float, float, float]) -> None:
    # Catches: a yaw or pitch sign error that turns the viewer's first frame away from
    # the scene's camera, or a Z-up (or rolled) camera opened, and saved back, as Y-up.
    camera = Camera(
        position=np.array([-3.0, 1.5, 2.0]), look_at=np.array([0.5, 0.2, -1.0]), up=np.array(up)
    )
    orbit = OrbitCamera.from_camera(camera)
    again = orbit.to_camera()
    assert np.allclose(again.position, camera.position)
    assert np.allclose(again.look_at, camera.look_at)
    assert np.allclose(again.basis()[2], camera.basis()[2])  # the same image up
    before = np.linalg.norm(orbit.position() - orbit.target)
    orbit.orbit(50, 20)
    assert np.linalg.norm(orbit.position() - orbit.target) == pytest.approx(before)
    assert np.allclose(orbit.to_camera().up, np.array(up) / np.linalg.norm(up))


def test_pan_keeps_the_view_direction_and_follows_the_cursor() -> None:
    # Catches: panning that rotates the view, or that moves the scene the wrong way or
    # by the wrong amount (the point at the target's depth must stay under the cursor).
    orbit = OrbitCamera.from_camera(
        Camera(position=np.array([0.0, 0.0, 4.0]), look_at=np.zeros(3), fov=60.0)
    )
    forward = orbit.basis()[0]
    orbit.pan(30.0, -20.0, viewport_height=300)
    assert np.allclose(orbit.basis()[0], forward)
    per_pixel = 2 * 4.0 * math.tan(math.radians(30)) / 300
    # dragging right moves the camera left (-X); dragging up (dy < 0) moves it down (-Y)
    assert np.allclose(orbit.target, [-30 * per_pixel, -20 * per_pixel, 0.0])
    assert np.linalg.norm(orbit.position() - orbit.target) == pytest.approx(4.0)


def test_frame_fits_a_known_box() -> None:
    # Catches: framing by the box's size instead of its bounding sphere, or ignoring the
    # aspect ratio (a wide box cut off in a tall window).
    for resolution in ((400, 300), (200, 400)):
        orbit = OrbitCamera.from_camera(
            Camera(position=np.array([5.0, 3.0, 7.0]), look_at=np.zeros(3), resolution=resolution)
        )
        lo, hi = np.array([1.0, -1.0, 2.0]), np.array([3.0, 0.0, 4.0])
        orbit.frame(lo, hi)
        assert np.allclose(orbit.target, [2.0, -0.5, 3.0])
        camera = orbit.to_camera()
        forward, right, up = camera.basis()
        tan_v = math.tan(math.radians(camera.fov) / 2)
        tan_h = tan_v * resolution[0] / resolution[1]
        extents = []
        for corner in np.array(np.meshgrid(*zip(lo, hi, strict=True))).T.reshape(-1, 3):
            d = corner - camera.position
            depth = d @ forward
            extents.append(max(abs(d @ right) / depth / tan_h, abs(d @ up) / depth / tan_v))
        assert max(extents) <= 1.0  # every corner inside the image
        assert max(extents) > 0.5  # and the box fills a good part of it


def test_saved_camera_keeps_the_rest_of_the_scene(tmp_path: Path) -> None:
    # Catches: saving that drops keys or the resolution, or writes a file that no longer
    # loads.
    scene_file = tmp_path / "scene.json"
    shutil.copy(REPO / "scenes" / "default" / "scene.json", scene_file)
    text = scene_file.read_text().replace("../../materials", str(REPO / "materials"))
    scene_file.write_text(text)
    orbit = OrbitCamera.from_camera(load_scene(scene_file).camera)
    orbit.orbit(200, 30)
    save_camera(scene_file, orbit.to_json())
    reloaded = load_scene(scene_file)
    assert np.allclose(reloaded.camera.position, orbit.position(), atol=1e-5)
    assert reloaded.camera.resolution == (640, 360)
    assert len(reloaded.instances) == 7


# --- the session, without a window ------------------------------------------------------
@pytest.fixture(scope="module")
def ab_scene_dict(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A sphere whose layered material has a (random) neural bake, on a diffuse floor."""
    folder = tmp_path_factory.mktemp("viewer")
    nmat = write_random_nmat(folder / "random.nmat", seed=3, size=8, decoder=(16, 16))
    return {
        "version": 1,
        "camera": {"position": [0, 0.6, 3], "look_at": [0, 0.3, 0], "resolution": list(SIZE)},
        "integrator": {"spp": 4, "max_depth": 3},
        "environment": {"type": "constant", "radiance": 1.0},
        "materials": {
            "metal": {
                "type": "layered",
                "path": str(REPO / "tests" / "data" / "rough_conductor.json"),
                "neural": str(nmat),
            },
            "floor": {"type": "diffuse", "albedo": 0.5},
        },
        "meshes": {
            "ball": {"type": "sphere", "radius": 0.6, "segments": 24, "rings": 12},
            "ground": {"type": "plane", "size": [6, 6]},
        },
        "instances": [
            {"mesh": "ball", "material": "metal", "transform": {"translate": [0, 0.3, 0]}},
            {"mesh": "ground", "material": "floor", "transform": {"translate": [0, -0.3, 0]}},
        ],
    }


@pytest.fixture()
def session(ab_scene_dict: dict, cpu):
    from renderer.viewer.session import ViewerSession

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random bake is "stale" for its source
        scene = load_scene(ab_scene_dict)
    return ViewerSession(scene, cpu, size=SIZE)


def test_views_match_the_kernel() -> None:
    # Catches: keys 1..7 and the kernel's view indices drifting apart.
    assert ("beauty", *VIEWS) == DISPLAY_VIEWS


def test_accumulates_and_restarts_small_while_moving(session) -> None:
    # Catches: accumulation that does not restart on a camera change (ghosting), or a
    # moving camera rendering at full resolution (an unresponsive CPU viewer).
    for expected in (1, 2, 3):
        session.step()
        assert session.stats().spp == expected
    assert session.display().shape == (SIZE[1], SIZE[0], 3)
    session.orbit.orbit(40, 0)
    session.camera_changed()
    session.step()
    small = session.stats()
    assert small.spp == 1 and small.resolution == (24, 16)
    session.last_change -= 1.0  # the camera has rested
    session.step()
    assert session.stats().resolution == SIZE and session.stats().spp == 1


def test_split_shows_reference_left_and_neural_right(session) -> None:
    # Catches: the split showing one mode on both sides, or the halves swapped.
    session.toggle_split()
    for _ in range(4):
        session.step()
    results = session.results()
    assert set(results) == {"reference", "neural"}
    shown = session.display()
    reference = session.tonemapped(results["reference"].radiance)
    neural = session.tonemapped(results["neural"].radiance)
    column = SIZE[0] // 2
    assert np.array_equal(shown[:, :column], reference[:, :column])
    assert np.array_equal(shown[:, column:], neural[:, column:])
    ball = (slice(8, 24), slice(16, 32))  # the sphere fills the middle of the image
    assert np.abs(reference[ball] - neural[ball]).mean() > 0.02  # the modes differ


def test_debug_views_and_material_under_the_cursor(session) -> None:
    # Catches: neural views drawn on non-neural surfaces, the frame view in the wrong
    # space (zero learned frames must show the shading normal), or the cursor lookup
    # reading the wrong pixel.
    session.toggle_materials()  # neural
    session.set_view("normal")
    normal = session.display()
    assert session.material_under(SIZE[0] / 2, SIZE[1] / 2) == "metal"
    assert session.material_under(1, SIZE[1] - 1) == "floor"
    for view in VIEWS:
        session.set_view(view)
        image = session.display()
        assert image.shape == (SIZE[1], SIZE[0], 3) and np.isfinite(image).all()
        if view in ("frames", "latent", "level", "pdf"):
            metal = session.debug.material == 0
            assert (session.debug.applies == metal).all()
    session.set_view("frames")
    frames = session.display()
    on_ball = session.debug.applies
    # random learned frames tilt the normal away from the shading normal
    assert np.abs(frames[on_ball] - normal[on_ball]).mean() > 0.01


def test_zero_learned_frames_show_the_shading_normal(
    ab_scene_dict: dict, cpu, tmp_path: Path
) -> None:
    # Catches: the frames view in the wrong space (local instead of world, or the
    # geometric instead of the shading frame).
    from renderer.viewer.session import ViewerSession

    flat = write_random_nmat(
        tmp_path / "flat.nmat", seed=3, size=8, decoder=(16, 16), frame_scale=0.0
    )
    scene_dict = {**ab_scene_dict, "materials": dict(ab_scene_dict["materials"])}
    scene_dict["materials"]["metal"] = {**scene_dict["materials"]["metal"], "neural": str(flat)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session = ViewerSession(load_scene(scene_dict), cpu, size=SIZE)
    session.toggle_materials()
    session.set_view("normal")
    normal = session.display()
    session.set_view("frames")
    frames = session.display()
    on_ball = session.debug.applies
    assert on_ball.sum() > 50
    assert np.abs(frames[on_ball] - normal[on_ball]).max() < 1e-4


def test_screenshot_writes_png_and_exr(session, tmp_path: Path) -> None:
    # Catches: a screenshot of an empty (black) accumulation, or only one of the files.
    session.step()
    written = session.screenshot(tmp_path / "shot.png")
    assert [p.name for p in written] == ["shot.png", "shot.exr"]
    from renderer.image_io import read_image

    assert read_image(tmp_path / "shot.exr").mean() > 0.05


# --- the window, under Xvfb -------------------------------------------------------------
@pytest.fixture(scope="module")
def display() -> str:
    """A private X display (Xvfb with Mesa's software OpenGL) for this module."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb is not installed (.ci/run installs it)")
    pytest.importorskip("glfw")
    read, write = os.pipe()
    process = subprocess.Popen(
        [xvfb, "-displayfd", str(write), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    number = b""
    while not number.endswith(b"\n"):
        chunk = os.read(read, 16)
        if not chunk:
            break
        number += chunk
    os.close(read)
    previous = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = f":{number.decode().strip()}"
    yield os.environ["DISPLAY"]
    if previous is None:
        os.environ.pop("DISPLAY", None)
    else:
        os.environ["DISPLAY"] = previous
    process.terminate()
    process.wait(timeout=10)


def test_window_responds_to_input_and_closes_cleanly(session, display: str) -> None:
    # Catches: a window that shows nothing, ignores the camera and toggle keys, shows one
    # mode on both sides of the split, or leaves threads behind when it closes.
    import glfw

    from renderer.viewer.window import Viewer

    threads = threading.active_count()
    viewer = Viewer(session)
    viewer.keep_last_frame = True
    try:
        for _ in range(3):
            viewer.frame()
        first = viewer.last_capture.copy()
        assert first.std() > 5  # a picture, not a blank window
        picture = session.display()
        # drag to orbit: the picture changes and the accumulation restarts
        viewer.on_cursor(20, 16)
        viewer.on_button(glfw.MOUSE_BUTTON_LEFT, glfw.PRESS, 0)
        viewer.on_cursor(40, 16)
        viewer.on_button(glfw.MOUSE_BUTTON_LEFT, glfw.RELEASE, 0)
        session.last_change -= 1.0
        viewer.frame()
        assert session.stats().spp == 1
        assert np.abs(session.display() - picture).mean() > 0.01
        # keys: neural, then the split with both halves, then a debug view
        viewer.on_key(glfw.KEY_N, glfw.PRESS, 0)
        assert session.materials == "neural"
        viewer.on_key(glfw.KEY_V, glfw.PRESS, 0)
        for _ in range(3):
            viewer.frame()
        assert set(session.jobs) == {"reference", "neural"}
        # drag the divider from the middle to a quarter of the width
        viewer.on_cursor(SIZE[0] / 2 + 1, 10)
        viewer.on_button(glfw.MOUSE_BUTTON_LEFT, glfw.PRESS, 0)
        viewer.on_cursor(SIZE[0] / 4, 12)
        viewer.on_button(glfw.MOUSE_BUTTON_LEFT, glfw.RELEASE, 0)
        assert session.split_at == pytest.approx(0.25)
        assert session.stats().spp >= 3  # moving the divider does not restart
        viewer.on_key(glfw.KEY_3, glfw.PRESS, 0)
        viewer.frame()
        assert session.view == "normal"
        viewer.on_resize(64, 40)
        viewer.frame()
        assert session.display().shape == (40, 64, 3)
        viewer.on_key(glfw.KEY_ESCAPE, glfw.PRESS, 0)
        assert glfw.window_should_close(viewer.window)
    finally:
        viewer.close()
    time.sleep(0.2)
    assert threading.active_count() <= threads


def test_cli_view_frames_and_screenshot(tmp_path: Path, display: str) -> None:
    # Catches: `nrender view --frames N --screenshot` hanging, or exiting without the
    # screenshot; and no display ending in a traceback instead of one line.
    scene = REPO / "tests" / "data" / "rough_conductor.json"  # a material: its preview
    env = {**os.environ, "DISPLAY": display}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "renderer",
            "view",
            str(scene),
            "--res",
            "40x30",
            "--frames",
            "2",
            "--screenshot",
            str(tmp_path / "v.png"),
            "--device",
            "cpu",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "v.png").stat().st_size > 0 and (tmp_path / "v.exr").is_file()
    env.pop("DISPLAY")
    env.pop("WAYLAND_DISPLAY", None)
    proc = subprocess.run(
        [sys.executable, "-m", "renderer", "view"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "xvfb-run" in lines[0] and "nrender render" in lines[0]
