"""The registry entries of the built-in data sets (imported for its side effect)."""

from __future__ import annotations

from .core import DatasetInfo
from .moving import load_moving_mnist, load_sklearn_digits
from .radar import load_radar
from .registry import register
from .sensors import load_chickenpox, load_los_loop
from .weather import load_era5_uk_t2m

_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_MNIST_SHA = {
    "train-images-idx3-ubyte.gz": "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
_PYSTEPS_DATA_ZIP = "https://github.com/pySTEPS/pysteps-data/archive/refs/heads/master.zip"

MOVING_MNIST = DatasetInfo(
    name="moving_mnist",
    kind="grid",
    field="video",
    description="Moving MNIST: 2 MNIST digits bouncing in 64x64 frames, 10 frames in, 10 out",
    source=(
        "N. Srivastava, E. Mansimov, R. Salakhutdinov, 'Unsupervised Learning of Video Representations "
        "using LSTMs', ICML 2015 (http://www.cs.toronto.edu/~nitish/unsupervised_video/); digits from "
        "MNIST, Y. LeCun, C. Cortes, C. Burges (http://yann.lecun.com/exdb/mnist/)"
    ),
    license="MNIST: commonly cited as CC BY-SA 3.0",
    files=tuple(f"mnist/{f}" for f in _MNIST_SHA) + ("mnist/mnist_test_seq.npy (optional)",),
    sample_shape="(20, 1, 64, 64) per sequence; a step is (1, 64, 64) in [0, 1]",
    t_in=10,
    t_out=10,
    step="frame",
    split=(
        "train: train_size (10000) sequences generated on the fly from the 60000 MNIST training digits "
        "(sequence i seeded by (seed, 0, i)); val: val_size (1000) fixed sequences from the training digits "
        "(seed, 1, i); test: test_size (10000) fixed sequences from the 10000 MNIST test digits (seed, 2, i), "
        "or the canonical mnist_test_seq.npy when present"
    ),
    default_split="generated",
    default_scaler="identity",
    units="intensity in [0, 1]",
    urls={
        **{f"mnist/{f}": (tuple(m + f for m in _MNIST_MIRRORS), s) for f, s in _MNIST_SHA.items()},
        "mnist/mnist_test_seq.npy": (
            "http://www.cs.toronto.edu/~nitish/unsupervised_video/mnist_test_seq.npy",
            None,
            "optional",
        ),
    },
    notes=(
        "options: train_size, val_size, test_size, seed, num_digits, image_size, seq_len, step_length, "
        "use_canonical_test. Metrics follow the video convention: MSE/MAE summed per frame, SSIM, PSNR."
    ),
)

DIGITS = DatasetInfo(
    name="digits",
    kind="grid",
    field="video",
    description="Moving digits from scikit-learn's bundled 8x8 digits upscaled to 28x28; needs no files",
    source="scikit-learn load_digits (UCI ML hand-written digits, E. Alpaydin, C. Kaynak, 1998)",
    license="scikit-learn bundled data (BSD-3-Clause package; UCI data CC BY 4.0)",
    files=(),
    sample_shape="(20, 1, 64, 64) per sequence; a step is (1, 64, 64) in [0, 1]",
    t_in=10,
    t_out=10,
    step="frame",
    split=(
        "train: train_size (2000) sequences generated on the fly from digit images 0..1499; val: val_size "
        "(200) fixed sequences from the same images; test: test_size (500) fixed sequences from images "
        "1500..1796"
    ),
    default_split="generated",
    default_scaler="identity",
    units="intensity in [0, 1]",
    notes=(
        "options as moving_mnist plus digit_size (28) and n_train_images (1500); the default data of "
        "`make demo` (image_size=32, digit_size=14 make it four times cheaper)."
    ),
)


def _radar_info(src: str) -> DatasetInfo:
    mch = src == "mch"
    events = "2015-05-15, 2016-07-11 and 2017-01-31" if mch else "2016-09-28 and 2017-05-09"
    return DatasetInfo(
        name=f"radar_{src}",
        kind="grid",
        field="precip",
        description=(
            "MeteoSwiss radar rain-rate composites (AQC GIF), 3 events of 40 frames"
            if mch
            else "Finnish Meteorological Institute radar reflectivity composites (PGM, dBZ -> mm/h), 2 events of 40 frames"
        ),
        source=f"pysteps example data, https://github.com/pySTEPS/pysteps-data (radar/{src}); "
        + ("MeteoSwiss" if mch else "Finnish Meteorological Institute"),
        license="pysteps-data terms (research and educational use)",
        files=tuple(
            f"radar/{src}/{e}/"
            for e in (("20150515", "20160711", "20170131") if mch else ("20160928", "20170509"))
        ),
        sample_shape="(1, 128, 128) rain rate in mm/h (4 km blocks, centre crop); native "
        + ("640x710" if mch else "1226x760")
        + " at 1 km",
        t_in=4,
        t_out=12,
        step="5min",
        split=(
            f"event-wise: events {events}, oldest first; the last event is the test set; "
            + (
                "the second-to-last validates; the first trains"
                if mch
                else "the first event's first 80 % trains and its last 20 % (at least one window) validates"
            )
        ),
        default_split="event",
        default_scaler="db",
        units="mm/h",
        metrics=("csi@1mm/h", "csi@5mm/h", "fss", "mae"),
        urls={f"radar/{src}/": (_PYSTEPS_DATA_ZIP, None)},
        notes=(
            "options: events, downsample (4), crop (128 | (h, w) | (y0, x0, h, w)), transform (None | 'dbr' | "
            "'log'), threshold (0.1 mm/h), cache, cache_dir, max_frames. NaN (no radar coverage) becomes "
            "mask False. The default 'db' scaler works in standardised dBR and its inverse gives mm/h. "
            "Score CSI at 1 and 5 mm/h for lead times up to 60 min against persistence and pysteps "
            "Lucas-Kanade + semi-Lagrangian extrapolation."
            + ("" if mch else " FMI decoding falls back to a built-in PGM reader when pyproj is missing.")
        ),
    )


ERA5 = DatasetInfo(
    name="era5_uk_t2m",
    kind="grid",
    field="weather",
    description="ERA5 hourly 2 m temperature over the UK, March 2019, 0.25 deg",
    source=(
        "ECMWF ERA5 (Hersbach et al. 2020, doi:10.1002/qj.3803) via Copernicus C3S; sample file from "
        "https://github.com/pydata/xarray-data (era5-2mt-2019-03-uk.grib)"
    ),
    license="Copernicus licence",
    files=("weather/era5_t2m_2019-03_uk.nc", "weather/era5-2mt-2019-03-uk.grib (alternative, needs cfgrib)"),
    sample_shape="(1, 33, 49) kelvin; latitude 58..50 N, longitude 10 W..2 E",
    t_in=12,
    t_out=12,
    step="1h",
    split="chronological 0.7 / 0.1 / 0.2 of the 744 hours (train to 2019-03-22 16:00, val to 2019-03-25 18:00, then test)",
    default_split=(0.7, 0.1, 0.2),
    default_scaler="standard",
    units="K",
    urls={
        "weather/era5-2mt-2019-03-uk.grib": (
            "https://github.com/pydata/xarray-data/raw/master/era5-2mt-2019-03-uk.grib",
            "e5e82609f0e28e84822852e15d20c88dbb4b142a30264a7e6f87b9b5c7501df9",
        ),
    },
    notes=(
        "options: source ('auto' | 'netcdf' | 'grib'), chunks (None loads into memory; an int keeps it lazy). "
        "coords['lat'] feeds lat-weighted RMSE; batches carry 'tod'/'dow'. Baselines: persistence and a "
        "diurnal climatology (strong daily cycle). download() converts the GRIB to NetCDF when cfgrib is present."
    ),
)

LOS_LOOP = DatasetInfo(
    name="los_loop",
    kind="sensor",
    field="sensor",
    description="Los-loop: traffic speeds of 207 loop detectors on Los Angeles highways, every 5 min, 7 days",
    source=(
        "L. Zhao et al., 'T-GCN: A Temporal Graph Convolutional Network for Traffic Prediction', IEEE T-ITS 2019, "
        "https://github.com/lehaifeng/T-GCN; sensor locations from DCRNN, https://github.com/liyaguang/DCRNN"
    ),
    license="as distributed by the T-GCN and DCRNN repositories (MIT)",
    files=(
        "traffic/los_loop/los_speed.csv",
        "traffic/los_loop/los_adj.csv",
        "traffic/los_loop/sensor_locations_metr_la.csv",
    ),
    sample_shape="(207, 1) speed in mph",
    t_in=12,
    t_out=12,
    step="5min",
    split="chronological 0.7 / 0.1 / 0.2 of the 2016 steps (no window crosses a boundary)",
    default_split=(0.7, 0.1, 0.2),
    default_scaler="standard",
    units="mph",
    metrics=("masked_mae", "masked_rmse", "masked_mape"),
    urls={
        "traffic/los_loop/los_speed.csv": (
            (
                "https://raw.githubusercontent.com/lehaifeng/T-GCN/master/data/los_speed.csv",
                "https://raw.githubusercontent.com/lehaifeng/T-GCN/master/T-GCN/T-GCN-PyTorch/data/los_speed.csv",
            ),
            "7b732d86ae32b2930595becba28aff39dacbfb2197e250fc0332e1744ce2cbf4",
        ),
        "traffic/los_loop/los_adj.csv": (
            (
                "https://raw.githubusercontent.com/lehaifeng/T-GCN/master/data/los_adj.csv",
                "https://raw.githubusercontent.com/lehaifeng/T-GCN/master/T-GCN/T-GCN-PyTorch/data/los_adj.csv",
            ),
            "7a6eb41e10677992b5af50f5ab187c6c05c5c3a92cb973950cfddbf857361e76",
        ),
        "traffic/los_loop/sensor_locations_metr_la.csv": (
            "https://raw.githubusercontent.com/liyaguang/DCRNN/master/data/sensor_graph/graph_sensor_locations.csv",
            "eb8ea96e07358b45d0e4ba3b89c2673fa20c54af50150249e627389e749ade6f",
        ),
    },
    notes=(
        "Zeros are missing readings (null_value=0 -> mask False; score with masked metrics, null 0). "
        "Times start 2012-03-01 00:00 (T-GCN paper: 1-7 March 2012); the CSV itself has no time column. "
        "options: null_value, start, with_coords. Baselines: historical average, last value."
    ),
)

CHICKENPOX = DatasetInfo(
    name="chickenpox",
    kind="sensor",
    field="sensor",
    description="Weekly chickenpox cases in the 20 counties of Hungary, 2005-2014 (standardised)",
    source=(
        "B. Rozemberczki et al., 'Chickenpox cases in Hungary: a benchmark dataset for spatiotemporal signal "
        "processing with graph neural networks', 2021; PyTorch Geometric Temporal, "
        "https://github.com/benedekrozemberczki/pytorch_geometric_temporal (dataset/chickenpox.json)"
    ),
    license="as distributed by PyTorch Geometric Temporal (MIT)",
    files=("graph/chickenpox.json",),
    sample_shape="(20, 1) standardised weekly cases",
    t_in=4,
    t_out=1,
    step="1W",
    split="chronological 0.7 / 0.1 / 0.2 of the 521 weeks",
    default_split=(0.7, 0.1, 0.2),
    default_scaler="standard",
    units="standardised cases",
    metrics=("masked_mae", "masked_rmse"),
    urls={
        "graph/chickenpox.json": (
            "https://raw.githubusercontent.com/benedekrozemberczki/pytorch_geometric_temporal/master/dataset/chickenpox.json",
            "724b48cfb274b2ecbb855bdb99b970b5ef9dd3671694fa477435dc1e08293735",
        ),
    },
    notes=(
        "t_in=4 lags, t_out=1 as in the PyTorch Geometric Temporal example. Values are already standardised "
        "(may be negative), so MAPE is not meaningful. No timestamps are stored in the file."
    ),
)


def _radar_loader(src):
    def loader(
        data_dir,
        info=None,
        events=None,
        downsample=4,
        crop=128,
        transform=None,
        threshold=0.1,
        zerovalue=None,
        cache=True,
        cache_dir=None,
        max_frames=None,
    ):
        return load_radar(
            src,
            data_dir,
            info,
            events=events,
            downsample=downsample,
            crop=crop,
            transform=transform,
            threshold=threshold,
            zerovalue=zerovalue,
            cache=cache,
            cache_dir=cache_dir,
            max_frames=max_frames,
        )

    loader.__doc__ = load_radar.__doc__
    return loader


register(MOVING_MNIST, load_moving_mnist)
register(DIGITS, load_sklearn_digits)
register(_radar_info("mch"), _radar_loader("mch"))
register(_radar_info("fmi"), _radar_loader("fmi"))
register(ERA5, load_era5_uk_t2m)
register(LOS_LOOP, load_los_loop)
register(CHICKENPOX, load_chickenpox)
