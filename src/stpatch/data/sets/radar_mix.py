"""``radar_mix``: every radar event of the pysteps example data (MeteoSwiss, FMI, RMI) on one working grid.

Three sources, six events, one grid: each source's 1 km composite is block-mean downsampled 4x and
centre-cropped to 128 x 128 (4 km pixels, 512 km square), at its 5-minute step, in mm/h; each event is
one segment, read through :func:`~stpatch.data.adapters.radar_files.from_radar` like ``radar_mch`` and
``radar_fmi`` (same cache).

Roles (segments ordered train, val, test; the split is a dict of segment indices, the existing
mechanism of :func:`stpatch.data.windows.split_ranges`, put in the returned data's ``info``):

* test: the held-out events MeteoSwiss 2017-01-31 and FMI 2017-05-09, the test events of ``radar_mch``
  and ``radar_fmi``, so the scores compare with theirs;
* val: MeteoSwiss 2016-07-11 (MeteoSwiss is the source with the most events, so it can give one up
  while every source still trains);
* train: every other event (MeteoSwiss 2015-05-15, FMI 2016-09-28, RMI 2021-07-04).

With ``train_tiles=S`` each training event is read over its whole (downsampled) domain and cut into
``crop``-sized tiles every ``S`` pixels (:func:`~stpatch.data.radar.tile_boxes`: tiles mostly outside
radar coverage or without rain are dropped), one segment per tile: the centre crop sees a fraction of
each composite (FMI's 4 km grid is 306 x 190), the tiles see the rest of the rain. Validation and
test events stay centre crops, so their windows are those of ``radar_mch`` / ``radar_fmi``.

The held-out events never train unless ``train_events`` names them, so ``test_events=["mch:20170131"]``
trains exactly as the default and scores one source: per-source scores of a trained run are
``evaluate(run, data=load("radar_mix", test_events=["fmi:20170509"]))``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..core import DatasetInfo, SpatioTemporalData
from ..radar import radar_transform, tile_boxes
from .radar import _PYSTEPS_DATA_ZIP, RADAR_EVENTS, check_options, decoded_event, event_files, load_events

__all__ = ["RADAR_MIX", "DATASETS", "HELD_OUT", "VALIDATION", "load_radar_mix", "mix_roles"]

#: The held-out test events (the test events of radar_mch and radar_fmi).
HELD_OUT = ("mch:20170131", "fmi:20170509")
#: The default validation event.
VALIDATION = ("mch:20160711",)
_SOURCES = ("mch", "fmi", "rmi")
_ROLES = ("train", "val", "test")


def _events(spec, role: str, sources: tuple[str, ...]) -> list[str] | None:
    """``"source:YYYYMMDD"`` names, checked against the known events of ``sources``."""
    if spec is None:
        return None
    items = [spec] if isinstance(spec, str) else list(spec)
    known = [f"{s}:{e}" for s in sources for e in RADAR_EVENTS[s]]
    bad = [str(i) for i in items if str(i).lower() not in known]
    if bad:
        raise ValueError(
            f"radar_mix: {role}_events {bad} are not events of the sources {list(sources)}; "
            f"known events: {', '.join(known)} (written 'source:YYYYMMDD')"
        )
    return [str(i).lower() for i in items]


def mix_roles(sources=None, train_events=None, val_events=None, test_events=None) -> dict[str, list[str]]:
    """The events of each role, ``{"train": ["mch:20150515", ...], "val": [...], "test": [...]}``."""
    sources = tuple(_SOURCES if sources is None else ([sources] if isinstance(sources, str) else sources))
    unknown = [s for s in sources if s not in _SOURCES]
    if unknown or not sources:
        raise ValueError(f"radar_mix: sources should be among {list(_SOURCES)}, got {list(sources)}")
    every = [f"{s}:{e}" for s in sources for e in RADAR_EVENTS[s]]
    test = _events(test_events, "test", sources) or [e for e in HELD_OUT if e in every]
    val = _events(val_events, "val", sources) or [e for e in VALIDATION if e in every]
    train = _events(train_events, "train", sources)
    if train is None:
        train = [e for e in every if e not in test and e not in val and e not in HELD_OUT]
    roles = {"train": train, "val": val, "test": test}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        both = sorted(set(roles[a]) & set(roles[b]))
        if both:
            raise ValueError(f"radar_mix: {both} would be in both {a} and {b}; an event has one role")
    for role in _ROLES:
        if not roles[role]:
            raise ValueError(
                f"radar_mix: no {role} event among the sources {list(sources)} "
                f"(train {train}, val {val}, test {test}); pass {role}_events=['source:YYYYMMDD']"
            )
    return roles


def load_radar_mix(
    data_dir: Path,
    info: DatasetInfo | None = None,
    sources=None,
    train_events=None,
    val_events=None,
    test_events=None,
    downsample: int = 4,
    crop=128,
    transform: str | None = None,
    threshold: float = 0.1,
    zerovalue: float | None = None,
    cache: bool = True,
    cache_dir=None,
    max_frames: int | None = None,
    train_tiles: int | None = None,
) -> SpatioTemporalData:
    """The events of :func:`mix_roles` as segments ``(T_i, 1, h, w)`` (train, then val, then test).

    Options as ``radar_mch`` (``downsample``, ``crop``, ``transform``, ``threshold``, ``cache``,
    ``max_frames`` ...) plus ``sources`` (subset of ``"mch"``, ``"fmi"``, ``"rmi"``),
    ``train_events`` / ``val_events`` / ``test_events`` (``"source:YYYYMMDD"`` names) and
    ``train_tiles`` (stride in pixels of crop-sized training tiles over each training event's whole
    domain; None: the centre crop only). The returned ``info.default_split`` is the dict of segment
    indices of each role; ``attrs["roles"]`` names the events, ``attrs["segments"]`` each segment.
    """
    who = "radar_mix"
    downsample = check_options(who, downsample, transform)
    roles = mix_roles(sources, train_events, val_events, test_events)
    names = [e for role in _ROLES for e in roles[role]]
    tiled = train_tiles is not None
    pairs = [tuple(e.split(":", 1)) for e in (names[len(roles["train"]):] if tiled else names)]
    data = load_events(pairs, Path(data_dir), who, info, downsample, crop, transform, threshold, zerovalue,
                       cache, cache_dir, max_frames)
    counts = {role: len(roles[role]) for role in _ROLES}
    segment_names = list(names)
    if tiled:
        segs, times, labels = _training_tiles(roles["train"], Path(data_dir), downsample, crop, int(train_tiles),
                                              transform, threshold, zerovalue, cache, cache_dir, max_frames)
        data = data.replace(segments=segs + data.segments, times=times + list(data.times),
                            mask=[np.isfinite(s) for s in segs] + list(data.mask))
        counts["train"] = len(segs)
        segment_names = labels + names[len(roles["train"]):]
        data.attrs["train_tiles"] = int(train_tiles)
    first = {role: sum(counts[r] for r in _ROLES[: _ROLES.index(role)]) for role in _ROLES}
    split = {role: list(range(first[role], first[role] + counts[role])) for role in _ROLES}
    data.attrs.update(events=names, roles=roles, segments=segment_names, projection=None,
                      institution="MeteoSwiss, FMI, RMI")
    # one projection per source: projected coordinates of one source would mislabel the others
    return data.replace(coords=None, info=None if info is None else replace(info, default_split=split))


def _training_tiles(events, data_dir, downsample, crop, stride, transform, threshold, zerovalue, cache, cache_dir,
                    max_frames):
    """Crop-sized tiles of each training event's whole domain: ``(segments, times, labels)``."""
    who = "radar_mix"
    if not (isinstance(crop, int | np.integer) or (isinstance(crop, list | tuple) and len(crop) == 2
                                                   and crop[0] == crop[1])):
        raise ValueError(f"radar_mix: train_tiles needs a square crop size (e.g. crop=128), got crop={crop!r}")
    size = int(crop if isinstance(crop, int | np.integer) else crop[0])
    segs, times, labels = [], [], []
    for event in events:
        source, day = event.split(":", 1)
        files = event_files(data_dir, source, day, who)[: None if max_frames is None else int(max_frames)]
        rain, stamps, _, _ = decoded_event(source, day, files, downsample, None, cache, cache_dir, who)
        boxes = tile_boxes(rain, size, stride, threshold)
        if not boxes:  # keep the event: its centre crop, as without tiles
            h, w = rain.shape[-2:]
            boxes = [((h - size) // 2, (w - size) // 2)]
        for y0, x0 in boxes:
            tile = np.ascontiguousarray(rain[..., y0 : y0 + size, x0 : x0 + size])
            segs.append(radar_transform(tile, transform, threshold, zerovalue))
            times.append(stamps)
            labels.append(f"{event}@{y0},{x0}")
    return segs, times, labels


RADAR_MIX = DatasetInfo(
    name="radar_mix",
    kind="grid",
    field="precip",
    description="Radar rain rate from three services (MeteoSwiss, FMI, RMI), 6 events on one 4 km grid",
    source="pysteps example data, https://github.com/pySTEPS/pysteps-data (radar/mch, radar/fmi, "
    "radar/rmi/radqpe); MeteoSwiss, Finnish Meteorological Institute, Royal Meteorological Institute of Belgium",
    license="pysteps-data terms (research and educational use)",
    files=tuple(f"radar/{s}/{e}/" for s in _SOURCES for e in RADAR_EVENTS[s]),
    sample_shape="(1, 128, 128) rain rate in mm/h (4 km blocks of the 1 km composites, centre crop)",
    t_in=4,
    t_out=12,
    step="5min",
    split=(
        "event-wise: trains on MeteoSwiss 2015-05-15, FMI 2016-09-28 and RMI 2021-07-04; validates on "
        "MeteoSwiss 2016-07-11; tests on the held-out MeteoSwiss 2017-01-31 and FMI 2017-05-09"
    ),
    default_split={"train": [0, 1, 2], "val": [3], "test": [4, 5]},
    default_scaler="db",
    units="mm/h",
    urls={
        "radar/mch/": (_PYSTEPS_DATA_ZIP, None),
        "radar/fmi/": (_PYSTEPS_DATA_ZIP, None),
        "radar/rmi/radqpe/": (_PYSTEPS_DATA_ZIP, None),
    },
    notes=(
        "options: sources, train_events, val_events, test_events ('source:YYYYMMDD'), downsample (4), "
        "crop (128), train_tiles (None | stride of training tiles over each training event's whole domain), "
        "transform, threshold, cache, cache_dir, max_frames. The held-out events never train "
        "unless train_events names them; test_events=['mch:20170131'] scores one source. RMI frames are "
        "read from radar/rmi/20210704/ or pysteps-data's radar/rmi/radqpe/20210704/. Reading FMI PGM "
        "needs pyproj and RMI ODIM HDF5 needs h5py (pip install 'stpatch[radar]')."
    ),
)

DATASETS = ((RADAR_MIX, load_radar_mix),)
