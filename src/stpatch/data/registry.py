"""Registry of named data sets: ``load(name)``, ``list_datasets()``, ``info(name)``, ``download(name)``.

The built-in data sets are families, one module each in :mod:`stpatch.data.sets`; :func:`discover`
imports every module there and registers the ``DATASETS`` it declares (and its ``after_download``
step), the first time the registry is asked anything.  :func:`dataset_table` renders the registry as
the table in the README and in ``stpatch datasets list``.

The data directory is ``data_dir`` or the environment variable ``STPATCH_DATA_DIR`` (else
``~/.cache/stpatch/data``).  Files keep the layout of their public sources, e.g.
``mnist/train-images-idx3-ubyte.gz`` or ``radar/mch/20150515/AQC151351545F_00005.801.gif``.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import shutil
import tempfile
import textwrap
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from ..atomic import atomic_path
from .core import DatasetInfo

__all__ = [
    "register",
    "load",
    "list_datasets",
    "info",
    "download",
    "discover",
    "families",
    "dataset_table",
    "resolve_data_dir",
    "missing_file_error",
    "sha256sum",
]

_REGISTRY: dict[str, tuple[DatasetInfo, Callable]] = {}
_AFTER_DOWNLOAD: dict[str, Callable] = {}  # name -> after_download(info, data_dir) -> list[Path]
_FAMILY: dict[str, str] = {}  # name -> the module of stpatch.data.sets that declares it
_discovered = False


def _add(info_: DatasetInfo, loader: Callable, after_download: Callable | None) -> None:
    _REGISTRY[info_.name] = (info_, loader)
    if after_download is None:
        _AFTER_DOWNLOAD.pop(info_.name, None)
    else:
        _AFTER_DOWNLOAD[info_.name] = after_download


def register(info_: DatasetInfo, loader: Callable, after_download: Callable | None = None) -> None:
    """Add a named data set: ``loader(data_dir, info, **options)`` returns its data.

    ``after_download(info, data_dir) -> list[Path]``, when given, runs at the end of
    :func:`download` (a format conversion, say) and returns the paths it wrote.  An entry registered
    under a built-in name replaces the built-in one.
    """
    discover()
    _add(info_, loader, after_download)


def _register_family(family: str, module) -> None:
    declared = getattr(module, "DATASETS", None)
    if not declared or not all(
        isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], DatasetInfo) and callable(pair[1])
        for pair in declared
    ):
        raise TypeError(
            f"{module.__name__} should declare DATASETS = ((DatasetInfo, loader), ...) with at least one "
            f"data set (see stpatch.data.sets), found {declared!r}"
        )
    hook = getattr(module, "after_download", None)
    for info_, loader in declared:
        owner = _FAMILY.get(info_.name)
        if owner is not None and owner != family:
            raise ValueError(f"data set {info_.name!r} is declared by both sets.{owner} and sets.{family}")
        _FAMILY[info_.name] = family
        _add(info_, loader, hook)


def discover() -> dict[str, tuple[str, ...]]:
    """Import every module of :mod:`stpatch.data.sets` (once) and register what it declares.

    Returns :func:`families`' mapping.  Modules whose name starts with ``_`` are skipped.
    """
    global _discovered
    if not _discovered:
        _discovered = True  # family modules import this module; never recurse
        try:
            from ..discovery import import_submodules

            for full_name, module in import_submodules(f"{__package__}.sets").items():
                _register_family(full_name.rsplit(".", 1)[1], module)
        except BaseException:
            _discovered = False
            raise
    out: dict[str, list[str]] = {}
    for name, family in sorted(_FAMILY.items()):
        out.setdefault(family, []).append(name)
    return {family: tuple(names) for family, names in sorted(out.items())}


def families() -> dict[str, tuple[str, ...]]:
    """The built-in families: ``{module name in stpatch.data.sets: (data set names, ...)}``."""
    return discover()


def list_datasets() -> list[str]:
    """Names of the registered data sets."""
    discover()
    return sorted(_REGISTRY)


def _entry(name: str):
    discover()
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
    discover()
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


# ----------------------------------------------------------------------------- the table
TABLE_COLUMNS = ("name", "field", "source", "sample shape", "split", "metrics", "baselines")


def _row(entry: DatasetInfo, code: Callable[[str], str]) -> list[str]:
    return [
        code(entry.name),
        entry.field,
        entry.source,
        entry.sample_shape,
        entry.split,
        ", ".join(code(m) for m in entry.metrics),
        ", ".join(code(b) for b in entry.baselines),
    ]


def _text_table(rows: list[list[str]], width: int = 32) -> str:
    """Rows as aligned columns, each cell wrapped to ``width``; a rule under the header, a blank line
    between rows that take several lines."""
    cells = [[textwrap.wrap(c, width, break_on_hyphens=False) or [""] for c in row] for row in rows]
    widths = [max(len(line) for row in cells for line in row[i]) for i in range(len(rows[0]))]
    tall = any(len(c) > 1 for row in cells[1:] for c in row)
    out = []
    for k, row in enumerate(cells):
        if k > 1 and tall:
            out.append("")
        for j in range(max(len(c) for c in row)):
            line = (c[j] if j < len(c) else "" for c in row)
            out.append("  ".join(t.ljust(w) for t, w in zip(line, widths, strict=True)).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def dataset_table(format: str = "markdown", names: Sequence[str] | None = None) -> str:
    """The registered data sets as a table, one row each, from what their :class:`DatasetInfo` holds.

    Columns: :data:`TABLE_COLUMNS` (name, field, source, sample shape, split, metrics, baselines).
    ``format``: ``"markdown"`` (the README's table; names in backticks, ``|`` escaped) or ``"text"``
    (for a terminal: aligned columns, long cells wrapped).  ``names``: the data sets to show (default all,
    sorted).  Ends without a newline.
    """
    names = list_datasets() if names is None else list(names)
    entries = [info(n) for n in names]
    if format == "markdown":
        rows = [_row(e, lambda s: f"`{s}`") for e in entries]
        lines = [list(TABLE_COLUMNS), ["---"] * len(TABLE_COLUMNS)]
        lines += [[cell.replace("|", "\\|") for cell in row] for row in rows]
        return "\n".join("| " + " | ".join(line) + " |" for line in lines)
    if format == "text":
        return _text_table([list(TABLE_COLUMNS)] + [_row(e, str) for e in entries])
    raise ValueError(f"dataset_table: format should be 'markdown' or 'text', got {format!r}")


TABLE_MARKERS = ("<!-- datasets:table -->\n", "\n<!-- /datasets:table -->")


def write_dataset_table(path: str | Path, names: Sequence[str] | None = None) -> bool:
    """Replace the Markdown table between :data:`TABLE_MARKERS` in ``path`` (e.g. README.md) atomically.

    ``names`` defaults to the built-in families' data sets. Returns True when the file changed.
    """
    from stpatch.atomic import write_text

    path = Path(path)
    text = path.read_text()
    start, end = TABLE_MARKERS
    if start not in text or end not in text:
        raise ValueError(f"{path} has no data-set table markers {start.strip()} ... {end.strip()}; add them where the table goes")
    if names is None:
        names = sorted(n for group in families().values() for n in group)
    head, rest = text.split(start, 1)
    new = head + start + dataset_table("markdown", names=names) + end + rest.split(end, 1)[1]
    if new != text:
        write_text(path, new)
    return new != text


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
    errors = []
    for url in urls:
        try:
            with atomic_path(dest) as tmp:
                req = urllib.request.Request(url, headers={"User-Agent": "stpatch"})
                with urllib.request.urlopen(req, timeout=timeout) as r, open(tmp, "wb") as f:
                    shutil.copyfileobj(r, f)
                if sha256 is not None:
                    got = sha256sum(tmp)
                    if got != sha256:
                        raise ValueError(f"sha256 mismatch for {url}: expected {sha256}, got {got}")
            return dest
        except Exception as e:  # noqa: BLE001 - try the next mirror
            errors.append(f"{url}: {e}")
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
                with z.open(m) as src, atomic_path(dest) as tmp, open(tmp, "wb") as f:
                    shutil.copyfileobj(src, f)
                out.append(dest)
    return out


def download(name: str, data_dir=None, force: bool = False, timeout: float = 60.0) -> list[Path]:
    """Fetch the files of ``name`` from their public sources into the data directory.

    Files already present with the right checksum are kept (unless ``force``); then the data set's
    ``after_download`` step runs, when it declares one.  Needs internet; the tests never call it.
    Returns the paths written or found.
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
    hook = _AFTER_DOWNLOAD.get(info_.name)
    if hook is not None:
        done += list(hook(info_, data_dir))
    return done
