"""Persistent cache for the C++ compiles of slangpy's CPU device.

The CPU device turns every kernel into C++ and builds a shared library with the system
compiler on each run (its own shader cache does not cover this), which costs seconds to
minutes per kernel. `install_shim` puts small `g++`/`clang++` shims first on PATH; each
hashes the generated source and flags, serves the library from the cache when it has
it, and otherwise runs the real compiler and stores the result (write then rename, so
concurrent test workers never see half a file).

The shims also force-include a small header (CPU_MATH_HEADER) into the kernels' C++:
Slang's CPU prelude implements min() and max() with ::fminf and ::fmaxf, which g++ cannot
inline (their NaN rules are not those of minss/maxss), so every min and max in a kernel was
a call into libm: a quarter of the path tracer's time on the glossy-sphere benchmark. The
header maps them to inline functions with the same results, NaN rules included.

With g++ they also raise two inlining limits (GXX_INLINE_FLAGS). At -O3 g++ kept the BVH
slab test out of line ("max-inline-insns-auto limit reached"), and spilling its six
arguments around each call cost more than the test: inlining it took 7% of the
instructions off the glossy-sphere benchmark, for about 2 s more compile per kernel.
On x86-64 inlining moves no floating-point operation (no FMA contraction without
-march; on targets with FMA in their baseline, such as aarch64, it could), so
images stay bit-identical.

This file also runs as the shim itself, with only the standard library, so it must not
import anything from the package.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

COMPILER_NAMES = ("g++", "clang++")
_MAX_ENTRIES = 400
# g++'s limits for inlining functions not declared inline (Slang declares none); clang++
# has no such parameters.
GXX_INLINE_FLAGS = ("--param=max-inline-insns-auto=200", "--param=inline-unit-growth=200")
# fminf/fmaxf with C's results (a NaN operand yields the other operand), inlined.
CPU_MATH_HEADER = """#ifndef NRENDER_CPU_MATH_H
#define NRENDER_CPU_MATH_H
#include <math.h>
static inline float nrender_fminf(float a, float b) { return a < b ? a : (b != b ? a : b); }
static inline float nrender_fmaxf(float a, float b) { return a > b ? a : (b != b ? a : b); }
#define fminf nrender_fminf
#define fmaxf nrender_fmaxf
#endif
"""


def _inside(path: str, root: str | None) -> bool:
    path = os.path.abspath(path)
    return root is not None and (path == root or path.startswith(root + os.sep))


def find_real_compiler(path_env: str, skip_dir: str | None, preferred: str = "g++") -> str | None:
    """First C++ compiler on `path_env` outside `skip_dir` (the shims' root folder, every
    checkout's shims included), preferring `preferred`."""
    skip = os.path.abspath(skip_dir) if skip_dir else None
    dirs = [d for d in path_env.split(os.pathsep) if d and not _inside(d, skip)]
    order = [preferred] + [n for n in COMPILER_NAMES if n != preferred]
    for name in order:
        found = shutil.which(name, path=os.pathsep.join(dirs))
        if found:
            return found
    return None


def shim_dir(cache_dir: Path) -> Path:
    """This checkout's shim folder: `cache_dir/bin/<tag>`, the tag naming this file and the
    Python running it. Every checkout (and installed copy) has its own shims, so one never
    compiles through another's flags or header, nor through a shim naming a deleted tree;
    all of them share the compiled kernels in `cache_dir/cxx`."""
    shim = Path(__file__).resolve()
    tag = hashlib.sha256(f"{shim}\0{sys.executable}".encode()).hexdigest()[:12]
    return cache_dir / "bin" / tag


def install_shim(cache_dir: Path) -> Path:
    """Create the shims in `shim_dir(cache_dir)` and put that folder first on this
    process's PATH."""
    bin_dir = shim_dir(cache_dir)
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = Path(__file__).resolve()
    script = (
        f'#!/bin/sh\nexec "{sys.executable}" -S -I "{shim}" "{bin_dir}" "$(basename "$0")" "$@"\n'
    )
    header = bin_dir / "nrender_cpu_math.h"
    if not header.exists() or header.read_text() != CPU_MATH_HEADER:
        tmp = header.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(CPU_MATH_HEADER)
        os.replace(tmp, header)
    for name in COMPILER_NAMES:
        shim = bin_dir / name
        if not shim.exists() or shim.read_text() != script:
            tmp = shim.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(script)
            tmp.chmod(0o755)
            os.replace(tmp, shim)
    path = os.environ.get("PATH", "")
    parts = [p for p in path.split(os.pathsep) if os.path.abspath(p) != str(bin_dir)]
    os.environ["PATH"] = os.pathsep.join([str(bin_dir), *parts])
    return bin_dir


def _single_source_build(args: list[str]) -> tuple[int, str] | None:
    """(index of the output argument, the source) of a one-source build (a kernel), or
    None."""
    if "-o" not in args or args.index("-o") + 1 >= len(args):
        return None
    sources = [a for a in args if a.endswith((".cpp", ".cc", ".cxx", ".c"))]
    return (args.index("-o") + 1, sources[0]) if len(sources) == 1 else None


def _cache_key(
    compiler: str, args: list[str], stand_ins: dict[str, str] | None = None
) -> tuple[str, str] | None:
    """(key, output path) for a one-source compile-and-link, or None if not cacheable.
    An argument in `stand_ins` enters the key as its stand-in (a header's content hash
    for its path, which differs between checkouts)."""
    build = _single_source_build(args)
    if build is None:
        return None
    out_index, source = build
    output = args[out_index]
    stand_ins = stand_ins or {}
    digest = hashlib.sha256()
    stat = os.stat(compiler)
    digest.update(f"{os.path.realpath(compiler)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    for i, arg in enumerate(args):
        if i == out_index:
            continue
        if arg == source:
            digest.update(Path(arg).read_bytes())
        else:
            digest.update(stand_ins.get(arg, arg).encode())
        digest.update(b"\0")
    return digest.hexdigest(), output


def _prune(store: Path) -> None:
    entries = sorted(store.glob("*.so"), key=lambda p: p.stat().st_atime)
    for stale in entries[: max(0, len(entries) - _MAX_ENTRIES)]:
        stale.unlink(missing_ok=True)


def run_shim(argv: list[str]) -> int:
    """Entry of the shim: argv = [shim folder, invoked name, compiler args...]."""
    bin_dir, invoked, args = os.path.abspath(argv[0]), argv[1], argv[2:]
    shims_root = os.path.dirname(bin_dir)
    compiler = find_real_compiler(os.environ.get("PATH", ""), shims_root, preferred=invoked)
    if compiler is None:
        sys.stderr.write("nrender: no C++ compiler (g++ or clang++) found on PATH\n")
        return 127
    # A kernel build (one source) force-includes the inline min/max header (module
    # docstring). It enters the key by its content, not its per-checkout path, so every
    # checkout shares the builds.
    header = os.path.join(bin_dir, "nrender_cpu_math.h")
    stand_ins = {}
    if _single_source_build(args) is not None and os.path.isfile(header):
        tag = hashlib.sha256(CPU_MATH_HEADER.encode()).hexdigest()[:12]
        stand_ins[header] = f"nrender_cpu_math.h:{tag}"
        args = ["-include", header, *args]
        if "clang" not in os.path.basename(os.path.realpath(compiler)):
            args = [*GXX_INLINE_FLAGS, *args]
    keyed = _cache_key(compiler, args, stand_ins)
    if keyed is None:
        return subprocess.call([compiler, *args])
    key, output = keyed
    store = Path(bin_dir).parents[1] / "cxx"  # cache_dir/cxx, shared by every checkout
    cached = store / f"{key}.so"
    if cached.is_file():
        shutil.copyfile(cached, output)
        os.utime(cached)
        return 0
    rc = subprocess.call([compiler, *args])
    if rc == 0 and os.path.isfile(output):
        store.mkdir(parents=True, exist_ok=True)
        tmp = store / f"{key}.tmp{os.getpid()}"
        shutil.copyfile(output, tmp)
        os.replace(tmp, cached)
        _prune(store)
    return rc


if __name__ == "__main__":
    sys.exit(run_shim(sys.argv[1:]))
