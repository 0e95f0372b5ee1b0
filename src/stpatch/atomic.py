"""Atomic file writes: write to a temporary file beside the target, then rename over it.

Everything a user keeps (checkpoints, configs, metrics, figures, forecasts, caches, downloads) is
written through this module, so a crash mid-write leaves either the old file or the new one, never
half of one. The rename is atomic on POSIX when the temporary file sits in the same directory.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> write_text(folder / "a.txt", "hello").name
'a.txt'
>>> (folder / "a.txt").read_text()
'hello'
>>> with atomic_path(folder / "b.npy") as tmp:
...     _ = tmp.write_bytes(b"x")
>>> sorted(p.name for p in folder.iterdir())
['a.txt', 'b.npy']
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "remove_stale_temporaries", "write_text", "write_bytes", "write_json"]


def _temporary_name(path: Path) -> Path:
    # same directory (rename stays atomic), hidden, per process and thread (parallel writers never share
    # one), and ending in the target's suffix so that writers which pick a format by suffix (matplotlib,
    # numpy, imageio, xarray) still do
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}-{threading.get_ident()}{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed to ``path``, on error removed.

    The parent directory is created when missing. The temporary path keeps ``path``'s suffix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to the temporary file {tmp} for {path}")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files that writers killed mid-write left under ``folder`` (recursively).

    A process killed by SIGKILL or a power cut cannot run :func:`atomic_path`'s clean-up, so its
    half-written ``.NAME.tmp-PID-THREAD.SUFFIX`` stays beside the intact target. Only files of
    processes that no longer run are removed (a live writer's file is left alone). Returns them.
    """
    removed = []
    for tmp in Path(folder).rglob(".*.tmp-*"):
        pid = tmp.name.rsplit(".tmp-", 1)[1].split("-", 1)[0]
        if tmp.is_file() and pid.isdigit() and not _alive(int(pid)):
            tmp.unlink()
            removed.append(tmp)
    return removed


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json(path: str | Path, obj: Any, indent: int = 2) -> Path:
    """Write ``obj`` as JSON atomically (NumPy scalars become floats); returns the path."""
    return write_text(path, json.dumps(obj, indent=indent, default=float))
