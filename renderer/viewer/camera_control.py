"""The viewer's camera: orbit about a target, pan, zoom, fly, and frame a bounding box.

An orbit camera is a target point, a distance from it and two angles (yaw about the
camera's up direction, pitch above the plane across it), so that orbiting keeps the
distance and panning keeps the view direction by construction. It converts to and from
the scene's `Camera` (position, look_at, up, fov) for rendering and for saving back to a
scene file; the scene's up (+Y by default, +Z in a Z-up scene) stays the up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..scene.types import Camera

# Mouse sensitivity: radians of orbit per pixel dragged, zoom factor per wheel step.
ORBIT_PER_PIXEL = 0.005
ZOOM_PER_STEP = 0.9
MAX_PITCH = math.radians(89.0)  # at +-90 the view direction is parallel to up
MIN_DISTANCE = 1e-4


def _orbit_axes(up: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An orthonormal (across, up, toward) frame for yaw and pitch; for up = +Y it is
    (+X, +Y, +Z), so yaw 0 looks along -Z as in the scene format."""
    up = np.asarray(up, np.float64) / np.linalg.norm(up)
    toward = np.array([0.0, 0.0, 1.0]) if abs(up[2]) < 0.9 else np.array([0.0, -1.0, 0.0])
    toward = toward - (toward @ up) * up
    toward /= np.linalg.norm(toward)
    return np.cross(up, toward), up, toward


@dataclass
class OrbitCamera:
    """A camera looking at `target` from `distance` away, along (yaw, pitch)."""

    target: np.ndarray
    distance: float
    yaw: float  # radians about +Y; 0 looks along -Z (the camera sits on +Z of the target)
    pitch: float  # radians; positive looks down at the target from above
    fov: float = 40.0
    resolution: tuple[int, int] = (640, 480)
    fly_speed: float = 1.0  # scene units per second, scaled by the wheel in fly mode
    up: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0, 0.0]))

    @staticmethod
    def from_camera(camera: Camera) -> OrbitCamera:
        target = np.asarray(camera.look_at, np.float64)
        offset = np.asarray(camera.position, np.float64) - target
        distance = float(np.linalg.norm(offset))
        up = np.asarray(camera.up, np.float64)
        up = up / np.linalg.norm(up)
        across, _, toward = _orbit_axes(up)
        yaw = math.atan2(offset @ across, offset @ toward)
        pitch = math.asin(float(np.clip(offset @ up / distance, -1.0, 1.0)))
        return OrbitCamera(
            target=target.copy(),
            distance=distance,
            yaw=yaw,
            pitch=float(np.clip(pitch, -MAX_PITCH, MAX_PITCH)),
            fov=float(camera.fov),
            resolution=tuple(camera.resolution),
            fly_speed=max(distance, MIN_DISTANCE),
            up=up,
        )

    # --- where it is ----------------------------------------------------------------
    def direction(self) -> np.ndarray:
        """Unit vector from the target to the camera."""
        across, up, toward = _orbit_axes(self.up)
        cp = math.cos(self.pitch)
        return (
            (cp * math.sin(self.yaw)) * across
            + math.sin(self.pitch) * up
            + (cp * math.cos(self.yaw)) * toward
        )

    def position(self) -> np.ndarray:
        return self.target + self.distance * self.direction()

    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(forward, right, up) of the view."""
        return self.to_camera().basis()

    def to_camera(self, resolution: tuple[int, int] | None = None) -> Camera:
        return Camera(
            position=self.position(),
            look_at=self.target.copy(),
            up=self.up.copy(),
            fov=self.fov,
            resolution=resolution or self.resolution,
        )

    def to_json(self) -> dict[str, object]:
        """The scene file's camera section for this view."""
        return {
            "position": [round(float(v), 6) for v in self.position()],
            "look_at": [round(float(v), 6) for v in self.target],
            "up": [round(float(v), 6) for v in self.up],
            "fov": round(self.fov, 4),
            "resolution": list(self.resolution),
        }

    # --- moves ------------------------------------------------------------------------
    def orbit(self, dx: float, dy: float) -> None:
        """Drag by (dx, dy) pixels: turn about the target (dragging right turns the scene
        right, dragging down tilts it down), at the same distance."""
        self.yaw -= dx * ORBIT_PER_PIXEL
        self.pitch = float(np.clip(self.pitch + dy * ORBIT_PER_PIXEL, -MAX_PITCH, MAX_PITCH))

    def pan(self, dx: float, dy: float, viewport_height: int) -> None:
        """Drag by (dx, dy) pixels: slide target and camera in the image plane so that the
        point at the target's depth follows the cursor; the view direction is unchanged."""
        _, right, up = self.basis()
        per_pixel = 2.0 * self.distance * math.tan(math.radians(self.fov) / 2) / viewport_height
        self.target = self.target - right * dx * per_pixel + up * dy * per_pixel

    def zoom(self, steps: float) -> None:
        """Wheel steps towards (positive) or away from the target."""
        self.distance = max(self.distance * ZOOM_PER_STEP**steps, MIN_DISTANCE)

    def fly(self, forward: float, right: float, up: float, seconds: float) -> None:
        """Move camera and target together (WASD/QE) at fly_speed for `seconds`."""
        f, r, _ = self.basis()
        step = (f * forward + r * right + self.up * up) * self.fly_speed
        self.target = self.target + step * seconds

    def frame(self, lo: np.ndarray, hi: np.ndarray) -> None:
        """Look at the box [lo, hi] from the current direction, close enough that its
        bounding sphere fills the narrower field of view."""
        lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        radius = max(0.5 * float(np.linalg.norm(hi - lo)), MIN_DISTANCE)
        width, height = self.resolution
        half_v = math.radians(self.fov) / 2
        half_h = math.atan(math.tan(half_v) * width / height)
        self.target = 0.5 * (lo + hi)
        self.distance = radius / math.sin(min(half_v, half_h))
        self.fly_speed = radius
