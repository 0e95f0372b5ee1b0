"""Registry of named data sets: ``load(name)``, ``list_datasets()``, ``info(name)``, ``download(name)``.

The data directory is ``data_dir`` or the environment variable ``STPATCH_DATA_DIR`` (else
``~/.cache/stpatch/data``).  Files keep the layout of their public sources, e.g.
``mnist/train-images-idx3-ubyte.gz`` or ``radar/mch/20150515/AQC151351545F_00005.801.gif``.

=============  =======  ===========================  ==========  =============================
name           kind     one step                      t_in/t_out  default split
=============  =======  ===========================  ==========  =============================
moving_mnist   grid     (1, 64, 64), [0, 1]          10 / 10     generated train, fixed val/test
digits         grid     (1, 64, 64), [0, 1]          10 / 10     generated train, fixed val/test
radar_mch      grid     (1, 128, 128) mm/h, 5 min    4 / 12      event: 2015, 2016 / 2017 test
radar_fmi      grid     (1, 128, 128) mm/h, 5 min    4 / 12      event: 2016 (80/20) / 2017 test
era5_uk_t2m    grid     (1, 33, 49) K, 1 h           12 / 12     0.7 / 0.1 / 0.2 along time
los_loop       sensor   (207, 1) mph, 5 min          12 / 12     0.7 / 0.1 / 0.2 along time
chickenpox     sensor   (20, 1) weekly cases (std.)  4 / 1       0.7 / 0.1 / 0.2 along time
=============  =======  ===========================  ==========  =============================
"""

from __future__ import annotations

import hashlib
import inspect
import os
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from .core import DatasetInfo

__all__ = [
    "register",
    "load",
    "list_datasets",
    "info",
    "download",
    "resolve_data_dir",
    "missing_file_error",
    "sha256sum",
]

_REGISTRY: dict[str, tuple[DatasetInfo, Callable]] = {}


def register(info_: DatasetInfo, loader: Callable) -> None:
    """Add a named data set: ``loader(data_dir, info, **options)`` returns its data."""
    _REGISTRY[info_.name] = (info_, loader)


def list_datasets() -> list[str]:
    """Names of the registered data sets."""
    return sorted(_REGISTRY)


def _entry(name: str):
    key = str(name).lower().replace("-", "_")
    if key not in _REGISTRY:
        raise ValueError(f"unknown data set {name!r}; available: {list_datasets()}")
    return _REGISTRY[key]


def info(name: str) -> DatasetInfo:
    """The registry entry of ``name``: source, split rule, shapes, defaults, metrics, baselines."""
    return _entry(name)[0]


def resolve_data_dir(data_dir=None) -> Path:
    """``data_dir``, else ``$STPATCH_DATA_DIR``, else ``~/.cache/stpatch/data``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("STPATCH_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "stpatch" / "data"


def missing_file_error(name: str, data_dir: Path, rel: str, what: str | None = None) -> FileNotFoundError:
    """The FileNotFoundError for a missing file: which file, where, and how to get it."""
    src = ""
    if name in _REGISTRY:
        src = f" Source: {_REGISTRY[name][0].source}."
    desc = f" ({what})" if what else ""
    target = str(Path(data_dir) / rel) + ("/" if rel.endswith("/") else "")
    return FileNotFoundError(
        f"data set {name!r} needs {target}{desc}, which is missing. Put the file there "
        f"(the data directory is {data_dir}; change it with data_dir=... or the STPATCH_DATA_DIR "
        f"environment variable), or run `stpatch datasets download {name}` on a machine with internet.{src}"
    )


def load(name: str, data_dir=None, **options):
    """Load the named data set.

    Returns a :class:`~stpatch.data.core.SpatioTemporalData` (or, for ``moving_mnist`` and
    ``digits``, a :class:`~stpatch.data.moving.MovingDigits` generator) with ``.info`` set to
    the registry entry.  ``options`` go to the data set's loader (see ``info(name).notes``).
    """
    info_, loader = _entry(name)
    sig = inspect.signature(loader)
    accepted = [p for p in sig.parameters if p not in ("data_dir", "info")]
    unknown = [k for k in options if k not in accepted]
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for data set {info_.name!r}; accepted: {accepted}")
    return loader(resolve_data_dir(data_dir), info_, **options)


# ----------------------------------------------------------------------------- download
def sha256sum(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fetch(urls, dest: Path, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Download the first URL that works to ``dest`` (atomically), checking ``sha256``."""
    urls = [urls] if isinstance(urls, str) else list(urls)
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
        os.close(fd)
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "stpatch"})
            with urllib.request.urlopen(req, timeout=timeout) as r, open(tmp, "wb") as f:
                shutil.copyfileobj(r, f)
            if sha256 is not None:
                got = sha256sum(tmp)
                if got != sha256:
                    raise ValueError(f"sha256 mismatch for {url}: expected {sha256}, got {got}")
            os.replace(tmp, dest)
            return dest
        except Exception as e:  # noqa: BLE001 - try the next mirror
            errors.append(f"{url}: {e}")
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    raise OSError(f"could not download {dest.name}:\n  " + "\n  ".join(errors))


def _extract_zip_folders(zip_path: Path, prefixes: list[str], data_dir: Path) -> list[Path]:
    """Extract members under ``<top>/<prefix>`` of a GitHub archive into ``data_dir/<prefix>``."""
    out = []
    with zipfile.ZipFile(zip_path) as z:
        for m in z.namelist():
            parts = m.split("/", 1)
            if len(parts) < 2 or m.endswith("/"):
                continue
            rel = parts[1]
            if any(rel.startswith(p) for p in prefixes):
                dest = data_dir / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with z.open(m) as src, open(dest, "wb") as f:
                    shutil.copyfileobj(src, f)
                out.append(dest)
    return out


def download(name: str, data_dir=None, force: bool = False, timeout: float = 60.0) -> list[Path]:
    """Fetch the files of ``name`` from their public sources into the data directory.

    Files already present with the right checksum are kept (unless ``force``).  Needs internet;
    the tests never call it.  Returns the paths written or found.
    """
    info_ = info(name)
    data_dir = resolve_data_dir(data_dir)
    done = []
    for rel, spec in info_.urls.items():
        urls, sha = spec[0], spec[1]
        optional = len(spec) > 2 and spec[2] == "optional"
        if rel.endswith("/"):  # a folder taken from a zip archive (pysteps-data)
            target = data_dir / rel
            if target.is_dir() and any(target.rglob("*")) and not force:
                done.append(target)
                continue
            with tempfile.TemporaryDirectory() as td:
                zpath = _fetch(urls, Path(td) / "archive.zip", sha, timeout)
                _extract_zip_folders(zpath, [rel], data_dir)
            done.append(target)
            continue
        dest = data_dir / rel
        if dest.exists() and not force and (sha is None or sha256sum(dest) == sha):
            done.append(dest)
            continue
        try:
            done.append(_fetch(urls, dest, sha, timeout))
        except OSError:
            if not optional:
                raise
    if info_.name == "era5_uk_t2m":
        nc = data_dir / "weather/era5_t2m_2019-03_uk.nc"
        grib = data_dir / "weather/era5-2mt-2019-03-uk.grib"
        if not nc.exists() and grib.exists():
            try:
                import xarray as xr

                ds = xr.open_dataset(grib, engine="cfgrib", backend_kwargs={"indexpath": ""})
                ds[["t2m"]].drop_vars(
                    [c for c in ("number", "step", "surface", "valid_time") if c in ds.coords]
                ).to_netcdf(nc)
                done.append(nc)
            except Exception:  # noqa: BLE001 - the loader can read the GRIB itself
                pass
    return done
