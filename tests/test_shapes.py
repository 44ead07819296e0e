"""Procedural shapes are closed where they should be, outward-facing and well formed."""

from __future__ import annotations

import numpy as np
import pytest

from renderer.scene import shapes
from renderer.scene.transform import compose, transform_normals, transform_points


def signed_volume(mesh) -> float:
    p, f = mesh.positions, mesh.faces
    return float(np.einsum("ij,ij->i", p[f[:, 0]], np.cross(p[f[:, 1]], p[f[:, 2]])).sum() / 6)


@pytest.mark.parametrize(
    "mesh, volume, rtol",
    [
        (shapes.sphere(radius=2.0, segments=128, rings=64), 4 / 3 * np.pi * 8, 2e-3),
        (shapes.box((1.0, 2.0, 3.0)), 6.0, 1e-9),
        (shapes.cylinder(radius=0.5, height=3.0, segments=256), np.pi * 0.25 * 3.0, 1e-3),
        (
            shapes.torus(major_radius=1.0, minor_radius=0.3, segments=256, rings=128),
            2 * np.pi**2 * 0.09,
            2e-3,
        ),
    ],
)
def test_closed_shapes_enclose_their_volume_outward(mesh, volume: float, rtol: float) -> None:
    assert signed_volume(mesh) == pytest.approx(volume, rel=rtol)


@pytest.mark.parametrize(
    "mesh", [shapes.sphere(), shapes.plane((2, 3)), shapes.box(), shapes.cylinder(), shapes.torus()]
)
def test_well_formed(mesh) -> None:
    assert mesh.faces.min() >= 0 and mesh.faces.max() < len(mesh.positions)
    assert np.isfinite(mesh.positions).all()
    assert mesh.uvs is not None and mesh.uvs.shape == (len(mesh.positions), 2)
    if mesh.normals is not None:
        np.testing.assert_allclose(np.linalg.norm(mesh.normals, axis=1), 1.0, atol=1e-9)
    p = mesh.positions[mesh.faces]
    area = np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1)
    assert (area > 0).all(), "no zero-area faces"


def test_plane_faces_up() -> None:
    p = shapes.plane().positions[shapes.plane().faces]
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    assert (n[:, 1] > 0).all()


def test_transforms() -> None:
    m = compose(np.array([1.0, 2.0, 3.0]), np.array([0.0, 90.0, 0.0]), np.array([2.0, 2.0, 2.0]))
    np.testing.assert_allclose(
        transform_points(m, np.array([[1.0, 0, 0]])), [[1, 2, 1]], atol=1e-12
    )
    # Non-uniform scale: normals follow the inverse transpose.
    s = compose(np.zeros(3), np.zeros(3), np.array([1.0, 4.0, 1.0]))
    n = transform_normals(s, np.array([[1.0, 1.0, 0.0]]) / np.sqrt(2))
    np.testing.assert_allclose(n, [[4 / np.sqrt(17), 1 / np.sqrt(17), 0]], atol=1e-12)
