"""A stack without layers is its base alone, whatever the shading point before it left in
the per-hit BSDF: materials/material.slang fills only the base lobes and layers a stack
uses (the rest keep whatever the memory held), so a read past those slots would show here
as a difference between a bare stack and the same stack inside a mix. That the unused
slots still hold the previous query's values is what the generated C++ does on the CPU
device, not something this test can enforce; a planted read past `count` failed it."""

from __future__ import annotations

import numpy as np
import pytest
from bsdf_checks import direction

from renderer.device import RenderDevice
from renderer.materials import MaterialQueries, load_material

BARE = {"type": "stack", "base": [{"type": "conductor", "metal": "gold", "roughness": 0.4}]}
# More lobes and a layer than BARE, so its slots hold other values when BARE comes next.
COATED = {
    "type": "stack",
    "base": [
        {"type": "sheen", "color": 0.8, "roughness": 0.5, "weight": 0.3},
        {"type": "diffuse", "albedo": [0.6, 0.3, 0.1], "weight": 0.5},
        {"type": "conductor", "metal": "silver", "roughness": 0.2},
    ],
    "layers": [{"ior": 1.5, "roughness": 0.3, "thickness": 0.2, "absorption": [0.5, 1, 2]}],
}
# Checker cells of 1/8 in uv: mask 0 (BARE) on even cells, 1 (COATED) on odd ones.
INTERLEAVED = {
    "version": 1,
    "textures": {"cells": {"type": "checker", "colors": [0.0, 1.0], "tiling": 8}},
    "nodes": {
        "bare": BARE,
        "coated": COATED,
        "surface": {"type": "mix", "mask": "cells", "a": "bare", "b": "coated"},
    },
    "root": "surface",
}


@pytest.fixture(scope="module")
def pair(cpu: RenderDevice) -> tuple[MaterialQueries, MaterialQueries]:
    alone = MaterialQueries(
        load_material({"version": 1, "nodes": {"bare": BARE}, "root": "bare"}), cpu
    )
    return alone, MaterialQueries(load_material(INTERLEAVED), cpu)


def test_bare_stack_ignores_the_slots_of_the_previous_hit(
    pair: tuple[MaterialQueries, MaterialQueries],
) -> None:
    # Catches: a base-only stack reading a lobe past base.count or a layer past
    # layer_count (a loop bounded by MAX_BASE_LOBES, a layer-0 lookup without the
    # layer_count check), which reads what the previous query's coated stack left there.
    alone, interleaved = pair
    n = 4096
    rng = np.random.default_rng(1)
    # Consecutive queries alternate between an even (bare) and an odd (coated) cell.
    cell = np.arange(n) % 8
    uv = np.stack([(cell + 0.25 + 0.5 * rng.random(n)) / 8.0, np.full(n, 0.5 / 8.0)], axis=1)
    wo, wi = (
        np.stack(
            [
                direction(t, p)
                for t, p in zip(*rng.uniform(0, 1, (2, n)) * [[80], [360]], strict=True)
            ]
        )
        for _ in range(2)
    )
    bare = cell % 2 == 0
    # Same query index, same random stream: the bare cells must agree to the bit.
    np.testing.assert_array_equal(
        interleaved.evaluate(uv, wi, wo)[bare], alone.evaluate(uv, wi, wo)[bare]
    )
    np.testing.assert_array_equal(interleaved.pdf(uv, wi, wo)[bare], alone.pdf(uv, wi, wo)[bare])
    got, want = interleaved.sample(uv, wo, seed=3), alone.sample(uv, wo, seed=3)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a[bare], b[bare])
    # The coated cells really differ (else the test would not exercise stale slots).
    assert not np.allclose(interleaved.pdf(uv, wi, wo)[~bare], alone.pdf(uv, wi, wo)[~bare])
