"""Device choice, Slang module loading and the kernel caches.

`open_device("auto")` picks CUDA when slangpy sees a CUDA adapter and the CPU device
otherwise; "cpu", "cuda" and "vulkan" ask for one explicitly and fail with a clear
message when it is absent. Kernels are explicit compute entry points (slangpy 0.43's
functional API does not run on the CPU device) loaded once per device and defines.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import slangpy as spy

from . import cxx_cache
from .device_choices import DEVICE_CHOICES
from .errors import DeviceError
from .layout import struct_dtype, struct_field_names
from .paths import shader_dir

_SPY_TYPES = {
    "cpu": spy.DeviceType.cpu,
    "cuda": spy.DeviceType.cuda,
    "vulkan": spy.DeviceType.vulkan,
}
_BUFFER_USAGE = spy.BufferUsage.shader_resource | spy.BufferUsage.unordered_access

# slangpy warns on every CPU device that it "pretends" to support sm_6_0; nothing to act on.
spy.Logger.get().level = spy.LogLevel.error


def cache_dir() -> Path:
    """Persistent kernel cache, outside any checkout: $NRENDER_CACHE_DIR or ~/.cache/nrender."""
    if env := os.environ.get("NRENDER_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nrender"


class Kernel:
    """One compiled compute entry point and the reflection of the program it lives in."""

    def __init__(self, program: spy.ShaderProgram, kernel: spy.ComputeKernel, name: str) -> None:
        self.program = program
        self.compute = kernel
        self.name = name
        layout = program.layout
        self.global_names = frozenset(p.name for p in layout.parameters)
        self.uniform_names = frozenset(p.name for p in layout.entry_points[0].parameters)
        self._dtypes: dict[str, np.dtype] = {}

    def dtype(self, struct_name: str) -> np.dtype:
        """numpy record type of a Slang struct, with this program's target layout."""
        if struct_name not in self._dtypes:
            self._dtypes[struct_name] = struct_dtype(self.program, struct_name)
        return self._dtypes[struct_name]

    def records(self, struct_name: str, count: int) -> np.ndarray:
        """Zeroed array of `count` records of a Slang struct."""
        return np.zeros(count, dtype=self.dtype(struct_name))

    def filled_records(self, struct_name: str, rows: list[dict[str, Any]]) -> np.ndarray:
        """Records of a Slang struct, one per dict of field values (at least one record:
        buffers cannot be empty; kernels are told the real counts)."""
        out = self.records(struct_name, max(len(rows), 1))
        for i, row in enumerate(rows):
            for key, value in row.items():
                out[i][key] = value
        return out

    def struct_fields(self, struct_name: str) -> list[str]:
        """Field names of a Slang struct as this program declares it (some fields exist on
        one target only)."""
        return struct_field_names(self.program, struct_name)

    def dispatch(self, thread_count: tuple[int, int, int], **params: Any) -> None:
        """Run the kernel over `thread_count` threads.

        `params` name the program's global parameters and the entry point's uniform
        parameters alike; they are routed here because slangpy takes globals in `vars`
        and crashes (rather than raising) on an entry-point argument it does not know.
        """
        unknown = set(params) - self.global_names - self.uniform_names
        if unknown:
            raise KeyError(f"kernel '{self.name}' has no parameter {', '.join(sorted(unknown))}")
        globals_ = {k: v for k, v in params.items() if k in self.global_names}
        uniforms = {k: v for k, v in params.items() if k not in self.global_names}
        self.compute.dispatch(thread_count=list(thread_count), vars=globals_, **uniforms)


@dataclass
class RenderDevice:
    """A slangpy device plus nrender's kernel cache for it."""

    kind: str
    device: spy.Device
    _kernels: dict[tuple[Any, ...], Kernel] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def description(self) -> str:
        info = self.device.info
        return f"{self.kind} ({info.adapter_name})" if info.adapter_name else self.kind

    def kernel(self, module: str, entry: str, defines: dict[str, str] | None = None) -> Kernel:
        """Compile (once) the compute entry `entry` of `shaders/<module>`."""
        key = (module, entry, tuple(sorted((defines or {}).items())))
        with self._lock:
            if key not in self._kernels:
                self._kernels[key] = self._compile(module, entry, defines or {})
            return self._kernels[key]

    def _compile(self, module: str, entry: str, defines: dict[str, str]) -> Kernel:
        options = spy.SlangCompilerOptions()
        options.include_paths = [str(shader_dir())]
        options.defines = {"NRENDER_DEVICE_" + self.kind.upper(): "1", **defines}
        # -O3 for the CPU device's C++ build: 2.2x the samples/s of -O2 for ~1 s more compile.
        options.optimization = spy.SlangOptimizationLevel.maximal
        session = self.device.create_slang_session(compiler_options=options)
        program = session.load_program(module, [entry])
        return Kernel(program, self.device.create_compute_kernel(program), entry)

    def upload(self, array: np.ndarray) -> spy.Buffer:
        """Structured buffer holding `array` (one element per record or row)."""
        array = np.ascontiguousarray(array)
        count = array.shape[0] if array.ndim else 1
        stride = array.itemsize * int(np.prod(array.shape[1:], dtype=np.int64))
        if count == 0:
            # Zero-sized buffers are not allowed; kernels are told the real count.
            return self.device.create_buffer(
                element_count=1, struct_size=max(stride, 4), usage=_BUFFER_USAGE
            )
        return self.device.create_buffer(
            element_count=count,
            struct_size=stride,
            usage=_BUFFER_USAGE,
            data=array.view(np.uint8).reshape(-1),
        )

    def zeros(self, count: int, stride: int) -> spy.Buffer:
        """Zero-filled structured buffer of `count` elements of `stride` bytes."""
        return self.upload(np.zeros((max(count, 1), stride), dtype=np.uint8))

    @staticmethod
    def download(buffer: spy.Buffer, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
        """Copy a buffer back to the host as an array of `dtype` with `shape`."""
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        raw = buffer.to_numpy().view(np.uint8).reshape(-1)
        return raw.view(dtype)[:count].reshape(shape).copy()


@contextlib.contextmanager
def _native_output_silenced() -> Iterator[None]:
    """Silence C-level stdout/stderr: driver probes print noise on machines without them."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def _adapters(kind: str) -> list[Any]:
    try:
        with _native_output_silenced():
            return list(spy.Device.enumerate_adapters(_SPY_TYPES[kind]))
    except Exception:
        return []


def _create(kind: str) -> spy.Device:
    desc = spy.DeviceDesc()
    desc.type = _SPY_TYPES[kind]
    desc.enable_hot_reload = False
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    desc.shader_cache_path = str(cache / "slang" / kind)
    options = spy.SlangCompilerOptions()
    options.include_paths = [str(shader_dir())]
    desc.compiler_options = options
    return spy.Device(desc)


def _check_cpu_compiler() -> None:
    cache = cache_dir()
    shims_root = os.path.abspath(cache / "bin")
    if cxx_cache.find_real_compiler(os.environ.get("PATH", ""), shims_root) is None:
        raise DeviceError(
            "the CPU device compiles Slang kernels to C++ and needs g++ or clang++ on PATH, "
            "but neither was found; install one (Debian/Ubuntu: apt-get install g++) "
            "or choose another device with --device"
        )
    if os.environ.get("NRENDER_NO_KERNEL_CACHE") != "1":
        cxx_cache.install_shim(cache)


@functools.cache
def _front_end_device() -> spy.Device:
    desc = spy.DeviceDesc()
    desc.type = spy.DeviceType.cpu
    desc.enable_hot_reload = False
    return spy.Device(desc)


def reflect_module(module: str) -> spy.ProgramLayout:
    """Reflection of `shaders/<module>` from the Slang front end alone: no kernel is
    compiled and no GPU is opened (for host code that only needs declared sizes)."""
    options = spy.SlangCompilerOptions()
    options.include_paths = [str(shader_dir())]
    session = _front_end_device().create_slang_session(compiler_options=options)
    return session.load_module(module).layout


@functools.cache
def open_device(kind: str = "auto") -> RenderDevice:
    """Open (once per process) the device `kind`: auto | cpu | cuda | vulkan."""
    if kind not in DEVICE_CHOICES:
        raise DeviceError(f"unknown device '{kind}': expected one of {', '.join(DEVICE_CHOICES)}")
    if kind == "auto":
        if _adapters("cuda"):
            try:
                return open_device("cuda")
            except DeviceError:
                pass
        return open_device("cpu")
    if kind == "cpu":
        _check_cpu_compiler()
    elif not _adapters(kind):
        raise DeviceError(
            f"device '{kind}' was requested but slangpy finds no {kind} adapter on this "
            "machine; use --device cpu (or auto, which falls back to the CPU)"
        )
    try:
        return RenderDevice(kind, _create(kind))
    except RuntimeError as exc:
        raise DeviceError(f"could not create the {kind} device: {exc}") from exc
