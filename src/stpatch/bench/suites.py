"""The benchmark suites: data, models trained under the budget, baselines, and what the table shows."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Suite:
    """One accuracy benchmark.

    Attributes:
        data: the ``data`` config section (same windows for every model).
        models: ``model`` config sections trained under the budget; a ``train`` key in one holds that
            model's own training options (e.g. its learning rate), which win over the suite's.
        baselines: parameter-free forecasters scored on the same windows.
        metric_suite: the metric suite name or explicit metric names (see ``stpatch.metrics``).
        headline: metric columns of the summary table; the first is also shown per lead time.
        leads: 1-based lead times for the per-lead table (all when empty).
        step_minutes: minutes per step, to label lead times.
        quick_options: data options for the seconds-long smoke run.
        loss: the training loss of the learned models (the metric the field reports: masked MAE for
            traffic and case counts, as BasicTS and tsl train; MSE for temperature, radar and video).
        train: further ``train`` options of the learned models (e.g. ``csi_thresholds`` for radar).
        budget: the designed training budget per model (HH:MM:SS): ``stpatch bench SUITE`` without
            ``--budget`` trains this long, and the tables of any other budget get sections and figures
            of their own (``accuracy-NAME-3min``) instead of replacing the designed one.
        test_sets: ``label -> loader options`` when one trained model is scored on several test
            sets (e.g. the multi-source radar model on each held-out event): the data set is loaded
            again with those options for each, and each gets its own table with the baselines
            scored on its windows. Empty: one table on the suite's own test split.
    """

    name: str
    title: str
    description: str
    data: dict
    models: list[dict]
    baselines: list[str]
    metric_suite: str | list[str]
    headline: list[str]
    leads: list[int] = field(default_factory=list)
    step_minutes: float | None = None
    quick_options: dict = field(default_factory=dict)
    lr: float = 1e-3
    loss: str = "mse"
    units_note: str = ""
    train: dict = field(default_factory=dict)
    budget: str = "00:20:00"
    test_sets: dict[str, dict] = field(default_factory=dict)

    def heading(self, budget: str) -> str:
        """The title of a table trained for ``budget``: :attr:`title`, naming the budget when it is not the designed one
        (a 3-minute table beside the 20-minute one must not carry the same heading).

        >>> SUITES["moving_mnist"].heading("00:20:00"), SUITES["moving_mnist"].heading("00:03:00")
        ('Moving MNIST (10 -> 10)', 'Moving MNIST (10 -> 10), 3-minute budget')
        """
        seconds = other_budget_seconds(budget, self.budget)
        if seconds is None:
            return self.title
        words = f"{seconds / 60:g}-minute" if seconds % 60 == 0 else f"{seconds:g}-second"
        return f"{self.title}, {words} budget"

    def lead_label(self, lead: int) -> str:
        """A lead time's column label: ``"15 min"`` with :attr:`step_minutes`, else ``"+3"``."""
        return f"{lead * self.step_minutes:g} min" if self.step_minutes else f"+{lead}"


def other_budget_seconds(budget: str, designed: str) -> float | None:
    """``budget`` in seconds when it is not the ``designed`` one, else None (both ``HH:MM:SS``).

    >>> other_budget_seconds("00:03:00", "00:20:00"), other_budget_seconds("00:20:00", "00:20:00")
    (180.0, None)
    """
    from stpatch.engine.losses import budget_seconds

    seconds = float(budget_seconds(budget))
    return None if seconds == budget_seconds(designed) else seconds


#: The learned radar model: stpnet as a correction on pysteps' extrapolation nowcast, which it also reads
#: (the nowcasts of the training windows are computed once and cached).
#: 8x8-pixel regions (4x fewer tokens than the default 4x4, so 4x more steps in a CPU budget), chosen on
#: the validation event with the loss below (BENCHMARKS.md, "How the radar settings were chosen").
#: After training, the correction is shrunk lead by lead towards the extrapolation by gains in [0, 1]
#: fitted on the validation windows (``val_gain``, stpatch.engine.val_gain).
RADAR_MODEL = {"name": "stpnet", "base": "extrapolation", "base_options": {"cache": 4000}, "feed_base": True,
               "patch": [2, 8, 8], "val_gain": True}
#: MSE of standardised dBR plus 4 x (1 - soft CSI at 1 mm/h): MSE alone lowered CSI on validation.
RADAR_TRAIN = {"csi_thresholds": [1.0], "csi_weight": 4.0}


def _radar(src: str, title: str, description: str = "", data: str | None = None, test_sets: dict | None = None,
           options: dict | None = None) -> Suite:
    return Suite(
        name=f"radar_{src}",
        title=title,
        description=(description or f"`radar_{src}`: 6 frames (30 min) in, 12 frames (60 min) out at 5-min steps on a 128x128 crop "
                     "of the composite downsampled 4x; trained on the source's earlier events, scored in mm/h on the held-out (latest) event.")
                    + (" stpnet stands on pysteps' Lucas-Kanade + semi-Lagrangian extrapolation (forecast = extrapolation + "
                       "learned correction on 8x8-pixel regions; the correction reads the input frames and the extrapolated ones), "
                       "trains on MSE of standardised dBR (10 log10 R, 0.1 mm/h floor) plus 4 x (1 - soft CSI at 1 mm/h); "
                       "after training, the correction at each lead is scaled by a gain in [0, 1] fitted on the validation "
                       "windows (the training loss there). Baselines: persistence and the same extrapolation."),
        data={"name": data or f"radar_{src}", "t_in": 6, "t_out": 12, "batch_size": 8, "options": options or {}},
        models=[dict(RADAR_MODEL)],
        train=dict(RADAR_TRAIN),
        baselines=["persistence", "extrapolation"],
        metric_suite="radar",  # csi@1.0, csi@5.0, fss@1.0/8px, mae_per_pixel
        headline=["csi@1.0", "csi@5.0", "fss@1.0/8px", "mae_per_pixel"],
        leads=[1, 3, 6, 12],
        step_minutes=5,
        quick_options={"max_frames": 24},
        units_note=" (rain rate in mm/h; CSI and FSS: higher is better)",
        test_sets=test_sets or {},
    )


SUITES: dict[str, Suite] = {
    "moving_mnist": Suite(
        name="moving_mnist",
        title="Moving MNIST (10 -> 10)",
        description=("Standard protocol: 64x64 frames, two MNIST digits bouncing; training sequences generated on "
                     "the fly from the MNIST training digits, scored on the first 1,000 sequences of the fixed seeded "
                     "test set (MNIST test digits). MSE/MAE are per-frame sums (OpenSTL convention). Every learned model trains "
                     "on batches of 4 at learning rate 2e-3 (chosen on the validation split with stpconv: more updates "
                     "in the same CPU time than batches of 16) on MSE plus 0.03 x (1 - SSIM) (the smallest weight "
                     "that took stpconv's validation SSIM above persistence's in 20 minutes, for about 8 % more error)."),
        # batch 4 at learning rate 2e-3 for every model: on one CPU thread a step's cost grows almost in
        # proportion to the batch, so batch 4 sees 80-93 % of the sequences of batch 16 per second and makes
        # about 3.5x the updates from them (stpconv on validation: 145.7 -> 129.7 MSE at 3 min, 111.9 -> 107.0 at 20 min;
        # BENCHMARKS.md, "Batch size at equal wall time")
        data={"name": "moving_mnist", "t_in": 10, "t_out": 10, "batch_size": 4,
              "options": {"test_size": 1000, "val_size": 100}},
        models=[{"name": "stpnet"}, {"name": "stpformer"}, {"name": "stpconv"}, {"name": "convlstm"}],
        lr=2e-3,
        # a structure term against blur: on validation (stpconv, batch 4, 20 min) SSIM 0.553 -> 0.703 against
        # persistence's 0.691, MSE 107.0 -> 115.3 (0.02: 0.691 / 112.1; BENCHMARKS.md "Batch size at equal wall time")
        train={"ssim_weight": 0.03},
        baselines=["persistence"],
        metric_suite="video",
        headline=["mse_per_frame", "mae_per_frame", "ssim", "psnr"],
        leads=[1, 5, 10],
        quick_options={"test_size": 8, "val_size": 4, "train_size": 32},
        units_note=" (pixel values in [0, 1]; SSIM and PSNR: higher is better)",
    ),
    "carphone": Suite(
        name="carphone",
        title="Real video: carphone (4 -> 4 frames, RGB 144x176)",
        description=("`carphone`: a standard video-coding test clip (a person talking in a moving car, scenery passing "
                     "the window), 120 RGB frames of 144x176 at 29.97 frames/s, not square and not a multiple of the "
                     "patch. Chronological split 72 / 24 / 24 frames: the model trains on the first 2.4 s and is scored "
                     "on every 8-frame window of the last 0.8 s. Per-pixel errors, SSIM and PSNR over the 3 colour channels. "
                     "Training windows are mirrored at random (left-right, up-down), and the learned models train on MSE "
                     "plus 0.1 x (1 - SSIM) (the SSIM term on a random 64-pixel square per step), both chosen on the validation split."),
        data={"name": "carphone", "t_in": 4, "t_out": 4, "batch_size": 4, "options": {"augment": ["flip"]}},
        models=[{"name": "stpnet"}, {"name": "stpconv"}],
        train={"ssim_weight": 0.1},
        budget="00:05:00",
        baselines=["persistence"],
        metric_suite="video",
        headline=["mse_per_pixel", "mae_per_pixel", "ssim", "psnr"],
        leads=[1, 2, 4],
        quick_options={"max_frames": 40},
        units_note=" (pixel values in [0, 1]; SSIM and PSNR: higher is better)",
    ),
    "radar_mch": _radar("mch", "Radar nowcasting, MeteoSwiss (30 min -> 60 min)"),
    "radar_fmi": _radar("fmi", "Radar nowcasting, FMI (30 min -> 60 min)"),
    "radar_mix": _radar(
        "mix", "Radar nowcasting, one model for three services (30 min -> 60 min)",
        description=("`radar_mix`: one model trained on the MeteoSwiss 2015-05-15, FMI 2016-09-28 and RMI 2021-07-04 "
                     "events (whole-field rotations by 90 degrees and flips of training windows), validated on MeteoSwiss "
                     "2016-07-11, and scored on each held-out event of `radar_mch` and `radar_fmi` (the same windows): "
                     "6 frames in, 12 out at 5-min steps, 128x128 crops of the composites downsampled 4x."),
        options={"augment": ["rot90", "flip"]},
        test_sets={"MeteoSwiss 2017-01-31": {"test_events": ["mch:20170131"]},
                   "FMI 2017-05-09": {"test_events": ["fmi:20170509"]}},
    ),
    "los_loop": Suite(
        name="los_loop",
        title="Los-loop traffic speed (12 -> 12, 5 min)",
        description=("207 loop detectors, chronological 7:1:2 split, zeros are missing readings (masked). "
                     "Masked MAE/RMSE in mph and MAPE as a fraction, at 15, 30 and 60 minutes and averaged. "
                     "stpnet_sensor stands on the per-sensor linear AR (forecast = linear + learned correction, the "
                     "correction also reads the linear forecast; each lead's loss in units of the linear AR's error there; the whole "
                     "hour as one time patch, groups of 2 sensors, 64-wide sensor features, 2 residual MLP layers per sensor, learning rate 2e-3, an ensemble "
                     "of 3 such corrections trained side by side within the same budget, half-hour time-of-day slots, chosen on the validation split); stid is STID (Shao et al., CIKM 2022), also at learning rate 2e-3 (better than 1e-3 for it on validation); linear is "
                     "fitted by least squares on the training split. Learned models train on masked MAE; neither "
                     "uses the day of week, since the test weekdays never occur in the 5 training days."),
        data={"name": "los_loop", "t_in": 12, "t_out": 12, "batch_size": 32, "split": [0.7, 0.1, 0.2]},
        models=[{"name": "stpnet_sensor", "base": "linear", "feed_base": True, "balance_leads": True, "use_dow": False,
                 "time_patch": 12, "group_size": 2, "node_dim": 64, "head_layers": 2, "members": 3, "tod_slots": 48,
                 "train": {"lr": 2e-3}},
                {"name": "stid", "use_dow": False, "train": {"lr": 2e-3}},
                {"name": "linear"}],
        baselines=["persistence", "climatology"],
        metric_suite="sensor",
        headline=["masked_mae", "masked_rmse", "masked_mape"],
        leads=[3, 6, 12],
        step_minutes=5,
        quick_options={},
        loss="mae",
        units_note=" (speed in mph)",
    ),
    "era5_uk_t2m": Suite(
        name="era5_uk_t2m",
        title="ERA5 2 m temperature over the UK (12 h -> 12 h)",
        description=("ERA5 hourly t2m, March 2019, 33x49 grid at 0.25 deg; chronological 7:1:2 split. "
                     "RMSE is latitude-weighted (cos-lat weights normalised to mean 1), in kelvin. stpnet stands on "
                     "the per-gridpoint linear AR (forecast = linear + learned correction, the correction also reads "
                     "the linear forecast) and trains on MSE with each lead weighted by 1 / (the linear AR's mean squared error there on "
                     "the training split), so that +1 h counts as much as +12 h; after training, the correction at each lead is scaled by a "
                     "gain in [0, 1] fitted on the validation split; linear is fitted by least squares on the training split."),
        data={"name": "era5_uk_t2m", "t_in": 12, "t_out": 12, "batch_size": 16, "split": [0.7, 0.1, 0.2]},
        models=[{"name": "stpnet", "base": "linear", "feed_base": True, "balance_leads": True, "val_gain": True},
                {"name": "linear"}],
        baselines=["persistence", "climatology"],
        metric_suite=["lat_weighted_rmse"],
        headline=["lat_weighted_rmse"],
        leads=[1, 3, 6, 12],
        step_minutes=60,
        units_note=" (kelvin)",
    ),
    "chickenpox": Suite(
        name="chickenpox",
        title="Chickenpox cases in Hungary (4 weeks -> 1 week)",
        description=("Weekly cases in the 20 counties of Hungary, 2005-2014 (standardised per county as distributed by "
                     "PyTorch Geometric Temporal), county adjacency as the graph; 4 weekly lags -> the next week, as in "
                     "the PyTorch Geometric Temporal example; chronological 7:1:2 split. stpnet_sensor stands on the "
                     "per-county linear AR (forecast = linear + learned correction; each county its own spatial patch, 64-wide county "
                     "features and 2 residual MLP layers per county, learning rate 3e-4, chosen on the validation split; after training the correction is scaled by a gain in [0, 1] "
                     "fitted on the validation split); STID trains at the suite's 1e-3 (3e-4 was worse for it on validation); "
                     "linear is fitted by least squares "
                     "on the training split. The file holds no dates, so no calendar features."),
        data={"name": "chickenpox", "t_in": 4, "t_out": 1, "batch_size": 16, "split": [0.7, 0.1, 0.2]},
        models=[{"name": "stpnet_sensor", "base": "linear", "feed_base": True, "time_patch": 1, "group_size": 1,
                 "node_dim": 64, "head_layers": 2, "val_gain": True, "train": {"lr": 3e-4}},
                {"name": "stid"},
                {"name": "linear"}],
        baselines=["persistence", "climatology"],
        metric_suite=["masked_mae", "masked_rmse"],
        headline=["masked_mae", "masked_rmse"],
        leads=[1],
        loss="mae",
        units_note=" (standardised weekly cases)",
    ),
}


def suite_names(suite: str = "all") -> list[str]:
    """The suites that ``suite`` names: one key of :data:`SUITES`, or all of them for ``"all"``.

    An unknown name raises ``ValueError`` listing the valid ones; the ``stpatch bench`` help and
    argument check use this table too, so they never offer a suite that does not exist.
    """
    if suite == "all":
        return list(SUITES)
    if suite not in SUITES:
        raise ValueError(f"unknown benchmark suite {suite!r}; choose from {', '.join(SUITES)} or all")
    return [suite]
