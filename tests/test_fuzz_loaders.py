"""Every loader, fed mutated versions of valid files, either loads or raises one
single-line NrenderError naming the file (tests/fuzzing.py makes the cases; the long run
is tools/fuzz_loaders.py --cases 10000)."""

from __future__ import annotations

import os
from pathlib import Path

import fuzzing
import pytest

SEED = int(os.environ.get("NRENDER_FUZZ_SEED", "0"))
# Cases per loader: a few hundred each, about a minute in all on one CPU core.
CASES = {"scene": 250, "material": 300, "nmat": 400, "image": 400, "mesh": 400, "gltf": 300}


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, fuzzing.Target]:
    return fuzzing.make_targets(tmp_path_factory.mktemp("fuzz-seeds"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_loader_survives_mutated_files(
    name: str, targets: dict[str, fuzzing.Target], tmp_path: Path
) -> None:
    # Catches: a loader letting a RecursionError, OverflowError, IndexError, OSError or
    # MemoryError escape, an error message spanning lines or not naming the file, and
    # a parse that never ends (each case has 20 s).
    results = []
    with fuzzing.cached_materials():
        for index in range(CASES[name]):
            results.append(fuzzing.run_case(targets[name], SEED, index, limit=20.0))
    findings = [r for r in results if r.outcome not in fuzzing.GOOD_OUTCOMES]
    assert not findings, "\n".join(
        f"{r.target}:{r.index} (from {r.seed_file}, NRENDER_FUZZ_SEED={SEED}) -> {r.outcome}: "
        f"{r.detail}  [rerun: python tools/fuzz_loaders.py --seed {SEED} --only "
        f"{r.target}:{r.index}]"
        for r in findings[:10]
    )
    # A fuzzer whose every case is rejected at the first byte tests nothing deep.
    outcomes = {r.outcome for r in results}
    assert outcomes == {"accepted", "rejected"}, outcomes
