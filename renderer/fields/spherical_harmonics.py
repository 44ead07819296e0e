"""Real spherical harmonics of a unit direction, bands 0 .. degree - 1 (degree^2 values):
the view-direction encoding of a NeRF's colour network. shaders/fields/nerf.slang
evaluates the same polynomials in the same order (band by band, m from -l to l)."""

from __future__ import annotations

import torch

MAX_DEGREE = 4


def sh_count(degree: int) -> int:
    return degree * degree


def spherical_harmonics(d: torch.Tensor, degree: int = MAX_DEGREE) -> torch.Tensor:
    """[B, degree^2] real SH basis values of unit directions `d` [B, 3]."""
    if not 1 <= degree <= MAX_DEGREE:
        raise ValueError(f"SH degree must be in [1, {MAX_DEGREE}], got {degree}")
    x, y, z = d.unbind(-1)
    out = [torch.full_like(x, 0.28209479177387814)]  # 1 / (2 sqrt(pi))
    if degree > 1:
        c1 = 0.4886025119029199  # sqrt(3 / (4 pi))
        out += [-c1 * y, c1 * z, -c1 * x]
    if degree > 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [
            1.0925484305920792 * x * y,
            -1.0925484305920792 * y * z,
            0.31539156525252005 * (3.0 * zz - 1.0),
            -1.0925484305920792 * x * z,
            0.5462742152960396 * (xx - yy),
        ]
    if degree > 3:
        out += [
            -0.5900435899266435 * y * (3.0 * xx - yy),
            2.890611442640554 * x * y * z,
            -0.4570457994644658 * y * (5.0 * zz - 1.0),
            0.3731763325901154 * z * (5.0 * zz - 3.0),
            -0.4570457994644658 * x * (5.0 * zz - 1.0),
            1.445305721320277 * z * (xx - yy),
            -0.5900435899266435 * x * (xx - 3.0 * yy),
        ]
    return torch.stack(out, dim=-1)
