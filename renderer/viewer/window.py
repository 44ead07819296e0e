"""The viewer's window: glfw for the window and input, moderngl to show the picture, Dear
ImGui (imgui-bundle) for the HUD. Everything it shows comes from a ViewerSession; the
input handlers (`on_key`, `on_drag`...) are what glfw calls, and what tests call.

Frames reach OpenGL by a host copy: the session's image is uploaded as a texture each
frame (see docs/viewer.md for what that costs and when it matters).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import NrenderError
from .session import DISPLAY_VIEWS, TONEMAPPERS, ViewerSession

NO_DISPLAY = (
    "nrender view needs a display ({why}); render images with `nrender render`, or run "
    "the viewer under a virtual display: `xvfb-run nrender view ...`"
)
MISSING_PACKAGES = (
    "nrender view needs the viewer packages ({missing}): pip install 'nrender[viewer]'"
)
HELP = (
    "drag: orbit | right/middle drag or shift+drag: pan | wheel: zoom | WASD/QE: fly "
    "(shift: faster) | F: frame | N: reference/neural | V: split | 1-7: views | C: channel "
    "| +/-: exposure | P: screenshot | J: print camera | Ctrl+S: save camera | Esc: quit"
)
# Keys 1..7 pick the views in this order.
VIEW_KEYS = DISPLAY_VIEWS
DIVIDER_GRAB_PIXELS = 8  # how close to the split divider a drag moves it

_VERTEX = """
#version 330
in vec2 corner;
out vec2 uv;
void main() {
    uv = vec2(corner.x * 0.5 + 0.5, 0.5 - corner.y * 0.5);  // image row 0 at the top
    gl_Position = vec4(corner, 0.0, 1.0);
}
"""
_FRAGMENT = """
#version 330
uniform sampler2D picture;
uniform float divider;  // split position in [0, 1], or < 0 for none
uniform float divider_width;  // in uv units
in vec2 uv;
out vec4 color;
void main() {
    color = vec4(texture(picture, uv).rgb, 1.0);
    if (divider >= 0.0 && abs(uv.x - divider) < divider_width)
        color = vec4(1.0, 1.0, 1.0, 1.0);
}
"""


def _import_gl() -> tuple[Any, Any, Any, Any]:
    missing = []
    modules = []
    for name in ("glfw", "moderngl", "imgui_bundle", "OpenGL"):
        try:
            modules.append(__import__(name))
        except ImportError:
            missing.append(name)
    if missing:
        raise NrenderError(MISSING_PACKAGES.format(missing=", ".join(missing)))
    return tuple(modules)  # type: ignore[return-value]


def check_display() -> None:
    """One clear error, before any scene loads, when there is no display to open."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise NrenderError(NO_DISPLAY.format(why="neither DISPLAY nor WAYLAND_DISPLAY is set"))
    _import_gl()


class Viewer:
    """A window showing a ViewerSession, with its HUD."""

    def __init__(self, session: ViewerSession, *, title: str = "nrender") -> None:
        glfw, moderngl, _, _ = _import_gl()
        from imgui_bundle import imgui
        from imgui_bundle.python_backends.glfw_backend import GlfwRenderer

        self.glfw = glfw
        self.imgui = imgui
        self.session = session
        if not glfw.init():
            raise NrenderError(NO_DISPLAY.format(why="glfw cannot connect to it"))
        glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
        glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
        glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
        glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
        width, height = session.size
        self.window = glfw.create_window(width, height, title, None, None)
        if not self.window:
            glfw.terminate()
            raise NrenderError(NO_DISPLAY.format(why="it refused an OpenGL 3.3 window"))
        glfw.make_context_current(self.window)
        glfw.swap_interval(0)
        self.ctx = moderngl.create_context()
        self.program = self.ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
        corners = np.array([-1, -1, 1, -1, -1, 1, 1, 1], np.float32)
        self.quad = self.ctx.vertex_array(
            self.program, [(self.ctx.buffer(corners.tobytes()), "2f", "corner")]
        )
        self.texture = None
        imgui.create_context()
        imgui.get_io().set_ini_filename("")  # no imgui.ini left in the user's folder
        self.hud = GlfwRenderer(self.window, attach_callbacks=True)
        # Chain our handlers after imgui's, so the HUD gets its input first.
        glfw.set_key_callback(self.window, self._key_event)
        glfw.set_mouse_button_callback(self.window, self._button_event)
        glfw.set_cursor_pos_callback(self.window, self._cursor_event)
        glfw.set_scroll_callback(self.window, self._scroll_event)
        glfw.set_framebuffer_size_callback(self.window, self._resize_event)
        self.cursor = (0.0, 0.0)
        self.drag_button: int | None = None
        self.dragging_divider = False
        self.last_frame = time.perf_counter()
        self.status = ""
        self.frames = 0
        self.screenshots = 0
        self.material_label: str | None = None
        self.closed = False
        self.keep_last_frame = False  # tests and docs: keep each frame's pixels
        self.last_capture: np.ndarray | None = None

    # --- glfw events, routed past the HUD -------------------------------------------
    def _key_event(self, window: Any, key: int, scancode: int, action: int, mods: int) -> None:
        self.hud.keyboard_callback(window, key, scancode, action, mods)
        if not self.imgui.get_io().want_capture_keyboard:
            self.on_key(key, action, mods)

    def _button_event(self, window: Any, button: int, action: int, mods: int) -> None:
        self.hud.mouse_button_callback(window, button, action, mods)
        if action == self.glfw.RELEASE or not self.imgui.get_io().want_capture_mouse:
            self.on_button(button, action, mods)

    def _cursor_event(self, window: Any, x: float, y: float) -> None:
        self.hud.mouse_callback(window, x, y)
        self.on_cursor(x, y)

    def _scroll_event(self, window: Any, dx: float, dy: float) -> None:
        self.hud.scroll_callback(window, dx, dy)
        if not self.imgui.get_io().want_capture_mouse:
            self.on_scroll(dy)

    def _resize_event(self, window: Any, width: int, height: int) -> None:
        self.on_resize(width, height)

    # --- input handlers ---------------------------------------------------------------
    def on_key(self, key: int, action: int, mods: int) -> None:
        glfw, s = self.glfw, self.session
        if action != glfw.PRESS:
            return
        ctrl = bool(mods & glfw.MOD_CONTROL)
        if key == glfw.KEY_ESCAPE:
            glfw.set_window_should_close(self.window, True)
        elif key == glfw.KEY_F:
            s.frame_scene()
        elif key == glfw.KEY_N:
            s.toggle_materials()
        elif key == glfw.KEY_V:
            s.toggle_split()
        elif key == glfw.KEY_C:
            s.next_channel()
        elif glfw.KEY_1 <= key < glfw.KEY_1 + len(VIEW_KEYS):
            s.set_view(VIEW_KEYS[key - glfw.KEY_1])
        elif key in (glfw.KEY_EQUAL, glfw.KEY_KP_ADD):
            s.exposure += 0.5
        elif key in (glfw.KEY_MINUS, glfw.KEY_KP_SUBTRACT):
            s.exposure -= 0.5
        elif key == glfw.KEY_P:
            # a failure is shown in the HUD's status line; the viewer carries on
            with contextlib.suppress(NrenderError):
                self.screenshot()
        elif key == glfw.KEY_J:
            import json

            print(json.dumps({"camera": s.orbit.to_json()}), flush=True)
        elif key == glfw.KEY_S and ctrl:
            self.save_camera()

    def on_button(self, button: int, action: int, mods: int) -> None:
        glfw = self.glfw
        if action == glfw.PRESS:
            shift = bool(mods & glfw.MOD_SHIFT)
            pan = button in (glfw.MOUSE_BUTTON_RIGHT, glfw.MOUSE_BUTTON_MIDDLE) or shift
            self.drag_button = 1 if pan else 0
            width = self.session.size[0]
            near_divider = (
                abs(self.cursor[0] - self.session.split_at * width) <= DIVIDER_GRAB_PIXELS
            )
            self.dragging_divider = self.session.split and not pan and near_divider
        elif action == glfw.RELEASE:
            self.drag_button = None
            self.dragging_divider = False

    def on_cursor(self, x: float, y: float) -> None:
        dx, dy = x - self.cursor[0], y - self.cursor[1]
        self.cursor = (x, y)
        self.material_label = None
        if self.drag_button is None:
            return
        self.on_drag(dx, dy, pan=self.drag_button == 1)

    def on_drag(self, dx: float, dy: float, *, pan: bool = False) -> None:
        s = self.session
        if self.dragging_divider:
            s.split_at = float(np.clip(self.cursor[0] / s.size[0], 0.0, 1.0))
            return
        if pan:
            s.orbit.pan(dx, dy, s.size[1])
        else:
            s.orbit.orbit(dx, dy)
        s.camera_changed()

    def on_scroll(self, steps: float) -> None:
        self.session.orbit.zoom(steps)
        self.session.camera_changed()

    def on_resize(self, width: int, height: int) -> None:
        if width > 0 and height > 0:
            self.ctx.viewport = (0, 0, width, height)
            self.session.resize(width, height)

    def fly(self, seconds: float) -> None:
        """Move with the held WASD/QE keys (shift: four times faster)."""
        glfw = self.glfw

        def held(key: int) -> float:
            return 1.0 if glfw.get_key(self.window, key) == glfw.PRESS else 0.0

        if held(glfw.KEY_LEFT_CONTROL) or held(glfw.KEY_RIGHT_CONTROL):
            return  # Ctrl+S saves the camera; it must not also fly backwards
        forward = held(glfw.KEY_W) - held(glfw.KEY_S)
        right = held(glfw.KEY_D) - held(glfw.KEY_A)
        up = held(glfw.KEY_E) - held(glfw.KEY_Q)
        if forward or right or up:
            fast = 4.0 if held(glfw.KEY_LEFT_SHIFT) or held(glfw.KEY_RIGHT_SHIFT) else 1.0
            self.session.orbit.fly(forward, right, up, min(seconds, 0.1) * fast)
            self.session.camera_changed()

    # --- actions ------------------------------------------------------------------------
    def screenshot(self, path: str | Path | None = None) -> list[Path]:
        if path is None:  # the first unused number: earlier sessions' shots stay
            while True:
                self.screenshots += 1
                path = Path(f"nrender-view-{self.screenshots:03d}.png")
                if not path.exists() and not path.with_suffix(".exr").exists():
                    break
        try:
            written = self.session.screenshot(path)
        except NrenderError as exc:
            self.status = str(exc)
            raise
        self.status = "wrote " + ", ".join(str(p) for p in written)
        print(f"nrender: {self.status}", flush=True)
        return written

    def save_camera(self) -> None:
        from ..scene.camera_file import save_camera

        source = self.session.scene.source
        try:
            save_camera(source, self.session.orbit.to_json())
            self.status = f"saved the camera to {source}"
        except NrenderError as exc:
            self.status = str(exc)
        print(f"nrender: {self.status}", flush=True)

    # --- drawing ------------------------------------------------------------------------
    def upload(self, image: np.ndarray) -> None:
        height, width = image.shape[:2]
        pixels = np.ascontiguousarray(np.round(np.clip(image, 0, 1) * 255), np.uint8)
        if self.texture is None or self.texture.size != (width, height):
            if self.texture is not None:
                self.texture.release()
            self.texture = self.ctx.texture((width, height), 3, alignment=1)
        self.texture.write(pixels.tobytes())

    def draw_hud(self) -> None:
        imgui, s = self.imgui, self.session
        stats = s.stats()
        imgui.set_next_window_pos((8, 8), imgui.Cond_.first_use_ever)
        imgui.set_next_window_bg_alpha(0.6)
        imgui.begin("nrender", None, imgui.WindowFlags_.always_auto_resize)
        first = stats.first_image_seconds
        imgui.text(
            f"{stats.frame_seconds * 1000:.0f} ms/frame  {stats.spp} spp  "
            f"{stats.resolution[0]}x{stats.resolution[1]}" + ("  (moving)" if s.moving else "")
        )
        imgui.text(f"device: {s.renderer.device.description}")
        if first is not None:
            imgui.text(f"first image after {first:.1f} s")
        mode = "reference | neural" if s.split else s.materials
        imgui.text(f"materials: {mode}  view: {s.view}")
        if self.material_label is None:
            name = s.material_under(*self.cursor)
            self.material_label = name or "(sky)"
        imgui.text(f"under the cursor: {self.material_label}")
        changed, value = imgui.slider_float("exposure", s.exposure, -8.0, 8.0)
        if changed:
            s.exposure = value
        current = TONEMAPPERS.index(s.tonemapper)
        changed, index = imgui.combo("tonemap", current, list(TONEMAPPERS))
        if changed:
            s.tonemapper = TONEMAPPERS[index]
        current = DISPLAY_VIEWS.index(s.view)
        changed, index = imgui.combo("view", current, list(DISPLAY_VIEWS))
        if changed:
            s.set_view(DISPLAY_VIEWS[index])
        if s.has_neural:
            changed, _ = imgui.checkbox("neural materials", s.materials == "neural")
            if changed:
                s.toggle_materials()
            changed, _ = imgui.checkbox("split reference | neural", s.split)
            if changed:
                s.toggle_split()
        if self.status:
            imgui.text_wrapped(self.status)
        imgui.text_disabled("keys: hover for help")
        if imgui.is_item_hovered():
            imgui.set_tooltip(HELP.replace(" | ", "\n"))
        imgui.end()

    def frame(self) -> None:
        """One turn of the loop: input, a frame of rendering, drawing."""
        glfw, imgui = self.glfw, self.imgui
        glfw.poll_events()
        now = time.perf_counter()
        self.fly(now - self.last_frame)
        self.last_frame = now
        self.session.step()
        self.upload(self.session.display())
        self.ctx.screen.use()
        self.ctx.clear(0.0, 0.0, 0.0)
        self.texture.use(0)
        self.program["divider"].value = self.session.split_at if self.session.split else -1.0
        self.program["divider_width"].value = 1.0 / max(self.session.size[0], 1)
        self.quad.render(self.ctx.TRIANGLE_STRIP)
        self.hud.process_inputs()
        imgui.new_frame()
        self.draw_hud()
        imgui.render()
        self.hud.render(imgui.get_draw_data())
        if self.keep_last_frame:
            self.last_capture = self.capture()
        glfw.swap_buffers(self.window)
        self.frames += 1

    def capture(self) -> np.ndarray:
        """What the window shows, HUD included: [H, W, 3] uint8, top row first."""
        width, height = self.ctx.screen.size
        data = self.ctx.screen.read(components=3, alignment=1)
        # moderngl selects colour attachment 0 as the read buffer, which the default
        # framebuffer does not have (GL_INVALID_OPERATION; the read still uses GL_BACK).
        # Clear the flag, or PyOpenGL in the HUD's renderer raises it at its next call.
        _ = self.ctx.error
        return np.frombuffer(data, np.uint8).reshape(height, width, 3)[::-1].copy()

    def run(self, *, frames: int | None = None, screenshot: str | Path | None = None) -> None:
        """Show frames until the window closes, or `frames` of them; then write the
        screenshot, if one is asked for."""
        try:
            while not self.glfw.window_should_close(self.window):
                if frames is not None and self.frames >= frames:
                    break
                self.frame()
            if screenshot is not None:
                self.screenshot(screenshot)
        finally:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.hud.shutdown()
        self.imgui.destroy_context()
        if self.texture is not None:
            self.texture.release()
        self.ctx.release()
        self.glfw.destroy_window(self.window)
        self.glfw.terminate()
