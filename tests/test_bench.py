"""Smoke test of the benchmark suites: each runs end to end with a seconds-long budget on a tiny subset.

Benchmarks are not tests: this only proves the code path (train under a budget, score the models and
the baselines on the same windows, format the table). The numbers come from `make bench`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stpatch.bench import SUITES, run_suite, suite_names
from stpatch.cli import app

DATA = Path(os.environ.get("STPATCH_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SUITES))
def test_suite_smoke(name, tmp_path, monkeypatch):
    if not DATA.is_dir():
        pytest.skip(f"real data sets not found at {DATA} (set STPATCH_DATA_DIR)")
    monkeypatch.setenv("STPATCH_DATA_DIR", str(DATA))
    suite = SUITES[name]
    suite = type(suite)(**{**suite.__dict__, "models": suite.models[:1]})  # one trained model is enough here
    results = run_suite(suite, "00:00:03", quick=True, out_dir=tmp_path)
    # one table per test set the suite names (one when it names none), each with its own baselines
    assert [label for label, _, _ in results] == (list(suite.test_sets) or [""])
    for label, table, rows in results:
        names = [row.name for row in rows]
        assert names[0] == suite.models[0]["name"] and "persistence" in names
        for row in rows:
            for metric in suite.headline:
                assert metric in row.mean, (row.name, metric, sorted(row.mean))
        assert "/ persistence" in table and suite.headline[0] in table
        assert (f"#### Test set: {label}" in table) == bool(label)
    assert (tmp_path / name / suite.models[0]["name"] / "eval.json").is_file()
    if len(results) > 1:  # the same model scored on different windows gives different numbers
        key = suite.headline[0]
        firsts = [rows[0].per_horizon[key] for _, _, rows in results]
        assert all(f != firsts[0] for f in firsts[1:])


def test_suite_names_come_from_the_suite_table():
    assert suite_names() == suite_names("all") == list(SUITES)
    assert suite_names("los_loop") == ["los_loop"]
    with pytest.raises(ValueError, match="unknown benchmark suite 'radar'; choose from moving_mnist, "):
        suite_names("radar")


def test_bench_command_offers_and_accepts_exactly_the_suite_table():
    cli = CliRunner()
    result = cli.invoke(app, ["bench", "--help"])
    assert result.exit_code == 0, result.output
    for name in SUITES:
        assert name in result.output
    for stale in ("patches", "models", "radar,"):  # once offered, never in the table
        assert stale not in result.output
    # an unknown name stops before anything trains, naming every valid suite
    result = cli.invoke(app, ["bench", "radar", "--quick"])
    assert result.exit_code == 2, result.output
    assert "unknown benchmark suite 'radar'" in result.output
    for name in [*SUITES, "all"]:
        assert name in result.output


@pytest.mark.slow
def test_run_benchmarks_draws_error_against_lead_time(tmp_path, monkeypatch):
    """The suite's picture has one line per model and baseline, and the markdown links it."""
    if not DATA.is_dir():
        pytest.skip(f"real data sets not found at {DATA} (set STPATCH_DATA_DIR)")
    import matplotlib.image as mpimg

    import stpatch.bench as bench
    from stpatch.bench import plots

    monkeypatch.setenv("STPATCH_DATA_DIR", str(DATA))
    drawn = {}
    real = plots.plot_lead_times

    def spy(title, metric, per_model, path, *args, **kwargs):
        drawn.update(per_model)
        return real(title, metric, per_model, path, *args, **kwargs)

    monkeypatch.setattr(plots, "plot_lead_times", spy)
    monkeypatch.setitem(bench.SUITES, "chickenpox", type(SUITES["chickenpox"])(
        **{**SUITES["chickenpox"].__dict__, "models": SUITES["chickenpox"].models[:1]}))
    text = bench.run_benchmarks("chickenpox", budget="00:00:02", quick=True, out_dir=tmp_path)
    figure = tmp_path / "chickenpox-2s.png"  # 2 s is not the designed budget: a figure name of its own
    assert f"]({figure.as_posix()})" in text
    assert set(drawn) >= {SUITES["chickenpox"].models[0]["name"], "persistence"}
    pixels = mpimg.imread(figure)
    assert pixels.shape[0] > 200 and pixels.shape[1] > 300 and pixels.std() > 0.05  # a drawn plot, not blank


@pytest.mark.slow
def test_bench_anomaly_tabulates_both_sources_beside_the_baselines(tmp_path, monkeypatch):
    if not (DATA / "video" / "carphone_pristine.mp4").is_file():
        pytest.skip(f"the real clip is not at {DATA}/video/carphone_pristine.mp4 (set STPATCH_DATA_DIR)")
    from stpatch.bench.anomaly import bench_anomaly

    monkeypatch.setenv("STPATCH_DATA_DIR", str(DATA))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "BENCHMARKS.md").write_text("# Benchmarks\n\nkept\n")
    (tmp_path / "benchmarks" / "figures").mkdir(parents=True)
    body = bench_anomaly(quick=True, write=True, out_dir=tmp_path / "out")
    tables = [block for block in body.split("\n\n") if block.startswith("| method |")]
    assert len(tables) == 2  # moving digits and the real clip
    for table in tables:
        rows = {line.split(" | ")[0].strip("| ") for line in table.splitlines()[2:]}
        assert rows == {"model", "persistence", "frame_difference"}
    page = (tmp_path / "BENCHMARKS.md").read_text()
    assert "kept" in page and "<!-- bench:anomaly -->" in page and "stpatch bench anomaly" in page
    for name in ("anomaly_digits_roc.png", "anomaly_carphone_roc.png", "anomaly_carphone_scores.png"):
        assert (tmp_path / "benchmarks" / "figures" / name).stat().st_size > 1000, name
    assert (tmp_path / "out" / "clip" / "scores.csv").is_file()


def test_the_table_says_which_checkpoint_was_scored():
    from stpatch.bench import ModelRow, format_suite
    from stpatch.bench.suites import SUITES

    suite = SUITES["radar_mch"]
    per = {"csi@1.0": [0.5] * 12}
    rows = [ModelRow("stpnet", 10, 0.1, "00:20:00", 1007, {"csi@1.0": 0.44}, per, scored_step=5),
            ModelRow("stpconv", 10, 0.1, "00:20:00", 900, {"csi@1.0": 0.43}, per, scored_step=900),
            ModelRow("persistence", 0, 0.0, "-", None, {"csi@1.0": 0.35}, per)]
    table = format_suite(suite, rows, 23, "00:20:00")
    assert "| 1007 (scored: 5) |" in table  # the best validation checkpoint came long before the end
    assert "| 900 |" in table and "| - |" in table
    # a table at another budget than the suite's designed one says so in its heading
    assert table.startswith(f"### {suite.title}\n")
    assert format_suite(suite, rows, 23, "00:03:00").startswith(f"### {suite.title}, 3-minute budget\n")


def test_seed_lists_and_ranges_parse_and_bad_ones_say_what_was_expected():
    from stpatch.bench.seeds import parse_seeds

    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,3,7") == [0, 3, 7]
    assert parse_seeds("0-2, 9") == [0, 1, 2, 9]
    for bad in ("a", "4-2", "1,1", "", "-3"):
        with pytest.raises(ValueError, match="--seeds: expected"):
            parse_seeds(bad)
    result = CliRunner().invoke(app, ["bench", "chickenpox", "--seeds", "two"])
    assert result.exit_code == 2 and "ranges such as 0-4" in result.output


def test_seed_spread_gives_mean_std_and_wins_in_the_metric_direction(tmp_path, monkeypatch):
    import stpatch.bench as bench
    from stpatch.bench import ModelRow

    def rows(seed, key, ours, theirs):
        return [ModelRow("stpnet", 1, 0.1, "b", 10 + seed, {key: ours}, {key: [ours]}),
                ModelRow("stid", 1, 0.1, "b", 20, {key: theirs}, {key: [theirs]}),
                ModelRow("persistence", 0, 0.0, "-", None, {key: 2.0}, {key: [2.0]})]

    seen = []

    def fake_run_suite(suite, budget, quick, out_dir, seed=0):
        seen.append((seed, out_dir.name))
        ours = {0: 0.50, 1: 0.60, 2: 0.40}[seed]  # beats stid (0.55) in seeds 0 and 2: lower is better
        return [("", "table", rows(seed, suite.headline[0], ours, 0.55))]

    monkeypatch.setattr(bench, "run_suite", fake_run_suite)
    monkeypatch.chdir(tmp_path)
    text = bench.run_benchmarks("chickenpox", budget="00:00:01", write=True, out_dir=tmp_path, seeds=[0, 1, 2])
    assert seen == [(0, "seed0"), (1, "seed1"), (2, "seed2")]
    assert "--seeds 0,1,2" in text and "3 seeds" in text
    assert "| stpnet | 0.5 | 0.082 | 0.4 | 0.6 | 11 | 0.5, 0.6, 0.4 |" in text
    assert "- stid: stpnet better in 2 of 3 seeds; ratio of the means 0.9091x; mean difference -0.05" in text
    assert "no difference shown at this number of seeds" in text  # -0.05 +- 0.25: the seeds disagree
    assert "<!-- bench:accuracy-chickenpox-1s-seeds -->" in (tmp_path / "BENCHMARKS.md").read_text()  # not the designed budget

    # where higher is better (CSI), the wins count the other way
    from stpatch.bench.seeds import format_seed_spread

    key = SUITES["radar_mch"].headline[0]
    spread = format_seed_spread(SUITES["radar_mch"], {s: rows(s, key, v, 0.55) for s, v in [(0, 0.5), (1, 0.6)]}, "00:20:00")
    assert "- stid: stpnet better in 1 of 2 seeds" in spread and "higher is better" in spread
    # a margin the seeds agree on is shown, in the metric's direction
    steady = {s: rows(s, key, v, 0.55) for s, v in [(0, 0.60), (1, 0.61), (2, 0.62)]}
    spread = format_seed_spread(SUITES["radar_mch"], steady, "00:20:00")
    assert "mean difference +0.06 (95 % interval +0.03516 to +0.08484: stpnet better)" in spread
    lower = {s: rows(s, "masked_mae", v, 0.55) for s, v in [(0, 0.60), (1, 0.61), (2, 0.62)]}
    assert "(95 % interval +0.03516 to +0.08484: stpnet worse)" in format_seed_spread(SUITES["chickenpox"], lower, "00:20:00")
    lower[1][1].mean.clear()  # stid has no value in seed 1: the table says so, and no verdict either way
    spread = format_seed_spread(SUITES["chickenpox"], lower, "00:20:00")
    assert "| stid | nan | nan |" in spread and "ratio of the means nanx; no paired difference: a value is missing" in spread

    # suites with several leads get the spread per lead: a per-lead target is met or missed lead by lead
    los = SUITES["los_loop"]
    key = los.headline[0]

    def lead_rows(ours):  # 12 leads; lead 3 (15 min) is where stid wins in one seed
        return [ModelRow("stpnet_sensor", 1, 0.1, "b", 10, {key: 1.0}, {key: ours}),
                ModelRow("stid", 1, 0.1, "b", 20, {key: 1.1}, {key: [3.0] * 12})]

    spread = format_seed_spread(los, {0: lead_rows([2.9] * 12), 1: lead_rows([2.9, 2.9, 3.2] + [2.9] * 9)}, "00:02:00")
    assert spread.startswith("### Los-loop traffic speed (12 -> 12, 5 min), 2-minute budget: 2 seeds")
    assert "| model | 15 min | 30 min | 60 min |" in spread
    assert "| stpnet_sensor | 3.05 | 2.9 | 2.9 |" in spread and "| stid | 3 | 3 | 3 |" in spread
    assert "- stid: 15 min 1 of 2, 30 min 2 of 2, 60 min 2 of 2" in spread
    assert "per lead" not in format_seed_spread(SUITES["chickenpox"], {0: rows(0, "masked_mae", 0.5, 0.55)}, "00:20:00")


def test_a_models_own_train_options_win_over_the_suites(tmp_path, monkeypatch):
    import stpatch.bench as bench
    import stpatch.engine.training as training

    configs = []

    class Stop(Exception):
        pass

    def fake_train(config):
        configs.append(config)
        raise Stop

    monkeypatch.setattr(training, "train", fake_train)
    suite = type(SUITES["chickenpox"])(**{**SUITES["chickenpox"].__dict__, "lr": 1e-3, "models": [
        {"name": "stpnet_sensor", "node_dim": 8, "train": {"lr": 3e-4}}]})
    with pytest.raises(Stop):
        bench.run_suite(suite, "00:00:01", False, tmp_path)
    (config,) = configs
    assert config["train"]["lr"] == 3e-4 and config["train"]["loss"] == suite.loss
    assert config["model"] == {"name": "stpnet_sensor", "node_dim": 8}  # no train key reaches the model


def test_other_budgets_get_their_own_sections_and_run_folders(tmp_path, monkeypatch):
    """A 3-minute run of a 20-minute suite writes `accuracy-NAME-3min` and leaves the designed table alone;
    two runs started in the same second never share a run folder."""
    import stpatch.bench as bench
    from stpatch.bench import ModelRow, budget_tag

    key = SUITES["chickenpox"].headline[0]
    folders = []

    def fake_run_suite(suite, budget, quick, out_dir, seed=0):
        folders.append(out_dir)
        return [("", f"table at {budget}", [ModelRow("stid", 1, 0.1, "b", 20, {key: 0.5}, {key: [0.5]})])]

    monkeypatch.setattr(bench, "run_suite", fake_run_suite)
    monkeypatch.chdir(tmp_path)
    bench.run_benchmarks("chickenpox", write=True)                       # the designed budget, 20 minutes
    bench.run_benchmarks("chickenpox", budget="00:03:00", write=True)
    text = (tmp_path / "BENCHMARKS.md").read_text()
    assert "table at 00:20:00" in text and "table at 00:03:00" in text
    assert "<!-- bench:accuracy-chickenpox -->" in text and "<!-- bench:accuracy-chickenpox-3min -->" in text
    assert (tmp_path / "benchmarks" / "figures" / "chickenpox-3min.png").is_file()
    assert (tmp_path / "benchmarks" / "figures" / "chickenpox.png").is_file()
    assert "--budget 00:03:00" in text.split("<!-- bench:accuracy-chickenpox-3min -->")[1]
    # the carphone suite is designed for 5 minutes: that is its plain section
    assert budget_tag("00:05:00", SUITES["carphone"].budget) == "" and budget_tag("00:20:00", "00:05:00") == "-20min"

    # two folders made in the same second differ
    monkeypatch.setattr(bench, "_dt", type("Clock", (), {"datetime": type("D", (), {
        "now": staticmethod(lambda: __import__("datetime").datetime(2026, 1, 1, 12, 0, 0))})}))
    first, second = bench._new_out_dir(tmp_path / "runs"), bench._new_out_dir(tmp_path / "runs")
    assert first != second and first.is_dir() and second.is_dir()
    assert len(set(folders)) == 2
