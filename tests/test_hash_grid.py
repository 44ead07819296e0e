"""The multiresolution hash encoding: its torch model against independent references, and
the Slang evaluator against the torch model (renderer/fields/, shaders/fields/)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.interpolate import RegularGridInterpolator

from renderer.fields import HashGrid, HashGridConfig
from renderer.fields.hash_grid import vertex_index
from renderer.fields.hash_grid_queries import HashGridQueries


def grid_with_table(config: HashGridConfig, seed: int) -> HashGrid:
    grid = HashGrid(config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        grid.table.copy_(torch.randn(grid.table.shape, generator=generator))
    return grid


def test_a_dense_level_is_trilinear_interpolation_of_its_grid(cpu) -> None:
    # Catches: a dense index with its strides swapped (x and z exchanged), corner weights
    # paired with the wrong corners, or a level with N cells given N (not N + 1) vertices
    # per axis: the level must equal scipy's trilinear interpolation of the grid its
    # table holds, vertex (i, j, k) at slot i + (N + 1) (j + (N + 1) k).
    config = HashGridConfig(
        levels=1, features=1, log2_table=12, base_resolution=7, max_resolution=7
    )
    cells = int(config.resolutions()[0])
    side = cells + 1
    assert config.is_dense(cells)
    grid = grid_with_table(config, seed=3)
    table = grid.table.detach().numpy()[0, :, 0]
    values = table[: side**3].reshape(side, side, side).transpose(2, 1, 0)  # [i, j, k]
    axis = np.linspace(0.0, 1.0, side)
    reference = RegularGridInterpolator((axis, axis, axis), values)
    rng = np.random.default_rng(4)
    points = np.concatenate([rng.random((2000, 3)), [[0, 0, 0], [1, 1, 1], [1, 0, 0.5]]])
    expected = reference(points)
    torch_values = grid(torch.from_numpy(points).float()).detach().numpy()[:, 0]
    np.testing.assert_allclose(torch_values, expected, atol=2e-6)
    slang_values = HashGridQueries(config, grid.table.detach().numpy(), cpu).encode(points)
    np.testing.assert_allclose(slang_values[:, 0], expected, atol=2e-6)


def test_hashed_levels_use_the_instant_ngp_primes(cpu) -> None:
    # Catches: other primes, a hash without 32-bit wrap-around (Python's big integers
    # would not wrap; the kernel's uint does), or a fine level indexed densely: slots of
    # hand-picked vertices on a hashed level, computed here from the definition
    # (i * 1) XOR (j * 2654435761) XOR (k * 805459861) mod 2^32, mod the table size.
    config = HashGridConfig(
        levels=2, features=1, log2_table=10, base_resolution=4, max_resolution=300
    )
    cells = int(config.resolutions()[1])
    assert not config.is_dense(cells) and config.is_dense(int(config.resolutions()[0]))
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [3, 5, 7], [300, 299, 17]])
    expected = [
        0,
        1 & 1023,
        (2654435761 % 2**32) & 1023,
        (805459861 % 2**32) & 1023,
        (3 ^ ((5 * 2654435761) % 2**32) ^ ((7 * 805459861) % 2**32)) & 1023,
        (300 ^ ((299 * 2654435761) % 2**32) ^ ((17 * 805459861) % 2**32)) & 1023,
    ]
    assert expected[2] == 0x1B1  # by hand: 2654435761 = 0x9E3779B1, low 10 bits 0x1B1
    torch_slots = vertex_index(torch.from_numpy(vertices), cells, config).tolist()
    assert torch_slots == expected
    queries = HashGridQueries(config, np.zeros((2, 1024, 1), np.float32), cpu)
    assert queries.vertex_index(vertices.astype(np.float32), level=1).tolist() == expected
    # the coarse level is dense: i + (N + 1) (j + (N + 1) k)
    side = int(config.resolutions()[0]) + 1
    dense = [i + side * (j + side * k) for i, j, k in vertices[:5]]
    assert queries.vertex_index(vertices[:5].astype(np.float32), level=0).tolist() == dense


def test_slang_encoding_equals_the_torch_model(cpu) -> None:
    # Catches: any difference between the kernel and the module training fits (level
    # resolutions rounded differently, other primes or strides on one side only, a level
    # or feature written to the wrong output slot). Both sum eight float32 products per
    # level, so they agree to float32 rounding: 2e-6 on table values of order 1.
    config = HashGridConfig(
        levels=8, features=4, log2_table=12, base_resolution=3, max_resolution=200
    )
    resolutions = config.resolutions()
    assert any(config.is_dense(int(n)) for n in resolutions)
    assert not all(config.is_dense(int(n)) for n in resolutions)
    grid = grid_with_table(config, seed=5)
    rng = np.random.default_rng(6)
    edges = np.array([[0, 0, 0], [1, 1, 1], [0.5, 1, 0], [1 / 3, 2 / 3, 1]], np.float32)
    points = np.concatenate([rng.random((3000, 3)).astype(np.float32), edges])
    expected = grid(torch.from_numpy(points)).detach().numpy()
    encoded = HashGridQueries(config, grid.table.detach().numpy(), cpu).encode(points)
    assert encoded.shape == (len(points), 32)
    np.testing.assert_allclose(encoded, expected, atol=2e-6)


def test_resolutions_grow_geometrically_from_base_to_max() -> None:
    # Catches: a growth factor computed over L levels instead of L - 1 (the last level
    # would stop short of max_resolution), or levels rounded up instead of down.
    config = HashGridConfig(
        levels=16, features=2, log2_table=19, base_resolution=16, max_resolution=2048
    )
    cells = config.resolutions().astype(np.float64)
    assert cells[0] == 16 and cells[-1] == 2048
    b = np.exp(np.log(2048 / 16) / 15)
    np.testing.assert_array_equal(cells, np.floor(16 * b ** np.arange(16) + 1e-9))
    assert np.all(np.diff(cells) > 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"levels": 40, "features": 2}, "levels x features"),
        ({"log2_table": 30}, "log2_table"),
        ({"base_resolution": 64, "max_resolution": 16}, "resolutions"),
    ],
)
def test_bad_configurations_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HashGridConfig(**kwargs)
