"""Connecting to a Ray cluster for `--cluster ADDRESS` (renders and bakes over many machines).

Ray is an optional extra (`pip install "nrender[cluster]"`); nothing here imports it before
a command asks for a cluster. Addresses (docs/cluster.md):
- `auto`: the cluster `ray start` joined this machine to, or the one RAY_ADDRESS names;
- `local`: a new Ray on this machine alone, with all its cores (ended when nrender exits);
- `HOST:PORT`: the head node's GCS address (`ray start --head` prints it; port 6379);
- `ray://HOST:PORT`: a Ray Client server (port 10001), for a machine outside the cluster.
A process that has already called `ray.init()` (a script, the tests) keeps its Ray.
"""

from __future__ import annotations

import logging
import re
import socket
from typing import Any

from .errors import NrenderError, one_line

CLUSTER_INSTALL = 'pip install "nrender[cluster]"'
# Ray retries an address where nothing answers for minutes, printing as it goes: a plain
# TCP connection answers first whether anything listens there at all.
_PROBE_SECONDS = 5.0
_HOST_PORT = re.compile(
    r"^(?:ray://)?(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})$"
)


def cluster_address(text: str) -> str:
    """An argparse type: `auto`, `local`, `HOST:PORT` or `ray://HOST:PORT`."""
    if text in ("auto", "local"):
        return text
    match = _HOST_PORT.match(text)
    if match is None or not 1 <= int(match["port"]) <= 65535:
        shown = repr(text) if len(text) <= 60 else repr(text[:50] + "...")
        raise ValueError(f"expected auto, local, HOST:PORT or ray://HOST:PORT, got {shown}")
    return text


def import_ray() -> Any:
    """The ray module, or one NrenderError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise NrenderError(
            f"--cluster needs Ray, which is not installed here: {CLUSTER_INSTALL}"
        ) from None
    return ray


def connect(address: str, *, local_cpus: int | None = None) -> Any:
    """Connect this process to the Ray cluster at `address` (see the module docstring) and
    return the ray module; `local_cpus` sizes a `local` Ray (default: all cores)."""
    address = cluster_address(address)
    ray = import_ray()
    if address not in ("auto", "local"):
        _probe(address)
    if ray.is_initialized():
        return ray
    options: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address == "local":
        options.update(num_cpus=local_cpus, include_dashboard=False)
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError, OSError) as exc:
        text = one_line(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc))
        raise NrenderError(f"--cluster {address}: cannot connect to Ray ({text})") from None
    return ray


def cluster_slots(ray: Any) -> tuple[int, int]:
    """(CPUs, GPUs) of the connected cluster, all nodes together."""
    resources = ray.cluster_resources()
    return int(resources.get("CPU", 0)), int(resources.get("GPU", 0))


def _probe(address: str) -> None:
    match = _HOST_PORT.match(address)
    assert match is not None  # cluster_address checked it
    host, port = match["host"].strip("[]"), int(match["port"])
    try:
        with socket.create_connection((host, port), timeout=_PROBE_SECONDS):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise NrenderError(
            f"--cluster {address}: nothing answers at {host}:{port} ({reason}); start the "
            "cluster's head there with `ray start --head` (docs/cluster.md)"
        ) from None
