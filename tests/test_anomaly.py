"""Surveillance (stpatch.anomaly): scores on hand-made clips with known answers, the stored threshold,
streaming, the CSV / plot / GIF, the command, bad input, and the injected-event evaluation."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

import stpatch
from stpatch.anomaly import evaluate_injected, inject_event, roc_auc, score, write_outputs
from stpatch.anomaly.scoring import patch_errors, psnr
from stpatch.cli import app

try:
    from data_helpers import require
    from test_engine_run import assert_figure, digit_windows, tiny_grid_config
except ImportError:  # tests/ imported as a package
    from tests.data_helpers import require
    from tests.test_engine_run import assert_figure, digit_windows, tiny_grid_config

SQUARE = (slice(16, 24), slice(8, 16))  # rows, cols of the event in the hand-made clip: patch (2, 1) of 8x8


@pytest.fixture(scope="module")
def persistence_run(tmp_path_factory):
    """A run whose forecast is the last input frame: the scores of a hand-made clip are known exactly."""
    config = tiny_grid_config(tmp_path_factory.mktemp("anomaly") / "persistence")
    config["model"] = {"name": "persistence"}
    stpatch.train(config)
    return config["run_dir"]


@pytest.fixture(scope="module")
def learned_run(tmp_path_factory):
    config = tiny_grid_config(tmp_path_factory.mktemp("anomaly") / "stpnet")
    stpatch.train(config)
    return config["run_dir"]


def square_clip(frames: int = 20, at: int = 12) -> np.ndarray:
    """A still dark clip ``(T, 1, 32, 32)`` where frame ``at`` alone holds a bright 8x8 square."""
    clip = np.zeros((frames, 1, 32, 32), dtype=np.float32)
    clip[at, 0, SQUARE[0], SQUARE[1]] = 1.0
    return clip


def test_known_scores_flag_and_locate_the_changed_frame(persistence_run):
    result = score(persistence_run, square_clip(), patch=8, progress=False)
    np.testing.assert_array_equal(result.frames, np.arange(4, 20))  # t_in = 4 frames before the first score
    # persistence misses the square at frame 12 (it appears) and at 13 (it is forecast but gone)
    expected_psnr = 10 * np.log10(1 / (64 / 1024))
    changed = np.isin(result.frames, [12, 13])
    np.testing.assert_allclose(result.psnr[changed], expected_psnr, rtol=1e-6)
    assert (result.psnr[~changed] > 99).all()
    np.testing.assert_allclose(result.score[changed], 0.0)
    np.testing.assert_allclose(result.score[~changed], 1.0)
    assert result.patch_error.shape == (16, 4, 4)
    assert result.flagged[changed].all() and not result.flagged[~changed].any()
    for k in np.flatnonzero(changed):
        assert np.unravel_index(result.patch_error[k].argmax(), (4, 4)) == (2, 1)
        np.testing.assert_allclose(result.patch_error[k][2, 1], 1.0)
    assert sorted(result.overlays) == [12, 13]


def test_patch_errors_average_partial_edge_patches():
    pred, target = np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 5, 5))
    target[0, 0, 4, 4] = 2.0
    err = patch_errors(pred, target, (4, 4))
    assert err.shape == (1, 2, 2)
    np.testing.assert_allclose(err[0], [[0, 0], [0, 4.0]])  # the 1x1 corner patch holds the one error alone
    assert psnr(np.array([0.01]))[0] == pytest.approx(20.0)


def test_threshold_is_calibrated_on_validation_psnr_stored_and_reused(persistence_run, learned_run):
    from pathlib import Path

    for run in (persistence_run, learned_run):
        path = Path(run) / "anomaly_threshold.json"
        path.unlink(missing_ok=True)
        first = score(run, square_clip(), progress=False, quantile=0.25)
        stored = json.loads(path.read_text())
        # the same number from the validation windows straight from the generator
        x, y = digit_windows("val")
        forecast = stpatch.predict(run, x)[:, 0] if run == learned_run else x[:, -1]
        expected = np.quantile(psnr(((forecast.astype(np.float64) - y[:, 0]) ** 2).mean(axis=(1, 2, 3))), 0.25)
        assert stored["psnr_threshold"] == pytest.approx(expected, rel=1e-5)
        assert first.threshold == pytest.approx(expected, rel=1e-5)
        assert stored["quantile"] == 0.25 and stored["frames"] == len(x)
        # a stored threshold is read back, not recomputed; another quantile is computed afresh
        path.write_text(json.dumps({**stored, "psnr_threshold": 7.5}))
        assert score(run, square_clip(), progress=False, quantile=0.25).threshold == 7.5
        assert score(run, square_clip(), progress=False, quantile=0.5).threshold != 7.5
        assert json.loads(path.read_text())["quantile"] == 0.5


def test_streaming_in_chunks_matches_one_chunk(learned_run, tmp_path):
    clip = np.random.default_rng(0).uniform(size=(23, 1, 32, 32)).astype(np.float32)
    np.save(tmp_path / "clip.npy", clip)
    whole = score(learned_run, clip, threshold=None, chunk=1000, progress=False)
    for chunk, batch in ((2, 3), (5, 16), (7, 1)):  # chunks shorter than t_in = 4 too
        part = score(learned_run, tmp_path / "clip.npy", threshold=None, chunk=chunk, batch_size=batch, progress=False)
        np.testing.assert_array_equal(part.frames, whole.frames)
        np.testing.assert_allclose(part.psnr, whole.psnr, rtol=1e-5)
        np.testing.assert_allclose(part.patch_error, whole.patch_error, rtol=1e-4, atol=1e-9)
    assert whole.patch == (4, 4) and whole.patch_error.shape == (19, 8, 8)  # the model's patch (2, 4, 4)


def test_outputs_csv_plot_and_gif(persistence_run, tmp_path):
    import imageio.v3 as iio
    import matplotlib.image as mpimg

    result = score(persistence_run, square_clip(), patch=8, progress=False)
    paths = write_outputs(result, tmp_path / "out")
    rows = list(csv.DictReader(paths["csv"].open()))
    assert list(rows[0]) == ["frame", "time_s", "score", "psnr_db", "flagged"]
    assert [int(r["frame"]) for r in rows] == list(range(4, 20))
    assert [int(r["frame"]) for r in rows if r["flagged"] == "1"] == [12, 13]
    assert float(rows[8]["score"]) == 0.0 and float(rows[0]["score"]) == 1.0 and rows[0]["time_s"] == ""

    assert_figure(paths["plot"])
    pixels = mpimg.imread(paths["plot"])[..., :3]
    reddish = ((pixels[..., 0] - pixels[..., 1]) > 0.1).sum()
    quiet = score(persistence_run, square_clip(), patch=8, threshold=None, progress=False)
    plain = mpimg.imread(write_outputs(quiet, tmp_path / "quiet")["plot"])[..., :3]
    assert reddish > 5 * max(((plain[..., 0] - plain[..., 1]) > 0.1).sum(), 20)  # the shaded interval
    assert write_outputs(quiet, tmp_path / "quiet")["gif"] is None

    gif = iio.imread(paths["gif"], index=None)
    assert gif.shape[:3] == (2, 96, 96)  # the two flagged frames, enlarged x3
    inside, outside = gif[0, 16 * 3 + 4, 8 * 3 + 4], gif[0, 4, 4]
    assert inside[0] > inside[1] + 50  # the heat map is red where the square is
    assert abs(int(outside[0]) - int(outside[1])) < 5  # and grey elsewhere


def test_cli_end_to_end_on_a_gif_and_a_folder(persistence_run, tmp_path):
    import imageio.v3 as iio

    def rgb8(clip):
        return (np.repeat(clip[:, 0, :, :, None], 3, axis=-1) * 255).astype(np.uint8)

    folder = tmp_path / "frames"
    folder.mkdir()
    for k, frame in enumerate(rgb8(square_clip())):
        iio.imwrite(folder / f"f{k:03d}.png", frame)
    # a GIF writer merges identical frames: a pixel that counts frames keeps them apart (a small error, ~33 dB)
    counted = square_clip()
    counted[np.arange(20), 0, 0, np.arange(20)] = 0.5
    iio.imwrite(tmp_path / "clip.gif", rgb8(counted), duration=100, loop=0)
    runner = CliRunner()
    for source, extra in ((folder, []), (tmp_path / "clip.gif", ["--threshold", "20"])):
        out = tmp_path / f"out_{source.stem}"
        res = runner.invoke(app, ["anomaly", "--checkpoint", str(persistence_run), "--input", str(source),
                                  "--output", str(out), "--patch", "8", "--no-progress", *extra])
        assert res.exit_code == 0, res.output
        assert "16 frames scored, 2 flagged" in res.output and "least regular: frame 1" in res.output
        flagged = [r["frame"] for r in csv.DictReader((out / "scores.csv").open()) if r["flagged"] == "1"]
        assert flagged == ["12", "13"]
        assert (out / "scores.png").is_file() and (out / "flagged.gif").is_file()


def test_bad_input_gets_clear_messages(persistence_run, tmp_path):
    from stpatch.data.guard import DataGuardError

    with pytest.raises(ValueError, match="needs 4 input frames .* at least 5"):
        score(persistence_run, square_clip()[:4], threshold=None, progress=False)
    with pytest.raises(DataGuardError, match="48 x 48, the run was trained on 32 x 32.*crop or resize"):
        score(persistence_run, np.zeros((8, 1, 48, 48), np.float32), threshold=None, progress=False)
    with pytest.raises(ValueError, match="1 channel.*has 2"):
        score(persistence_run, np.zeros((8, 2, 32, 32), np.float32), threshold=None, progress=False)
    with pytest.raises(DataGuardError, match="Inf|inf"):
        bad = square_clip()
        bad[6, 0, 0, 0] = np.inf
        score(persistence_run, bad, threshold=None, progress=False)
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    with pytest.raises(ValueError, match="cannot read as video"):
        score(persistence_run, tmp_path / "broken.mp4", threshold=None, progress=False)
    with pytest.raises(FileNotFoundError, match="no such clip"):
        score(persistence_run, tmp_path / "missing.mp4", threshold=None, progress=False)
    # colour frames are averaged to grey for a one-channel run (not refused)
    rgb = np.repeat(square_clip(), 3, axis=1)
    assert score(persistence_run, rgb, patch=8, progress=False).flagged.sum() == 2

    res = CliRunner().invoke(app, ["anomaly", "--checkpoint", str(persistence_run), "--input",
                                   str(tmp_path / "broken.mp4"), "--no-progress"])
    assert res.exit_code == 2 and "error:" in res.output and "cannot read as video" in res.output
    res = CliRunner().invoke(app, ["anomaly", "--input", str(tmp_path / "broken.mp4")])
    assert res.exit_code == 2 and "--checkpoint" in res.output


def test_roc_auc_known_values_and_chance():
    assert roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1], bool)) == pytest.approx(0.75)
    assert roc_auc(np.array([1.0, 1.0, 0.0]), np.array([1, 0, 0], bool)) == pytest.approx(0.75)  # ties count half
    rng = np.random.default_rng(0)
    labels = rng.uniform(size=4000) < 0.2
    assert abs(roc_auc(rng.uniform(size=4000), labels) - 0.5) < 0.03
    with pytest.raises(ValueError, match="both"):
        roc_auc(np.ones(3), np.zeros(3, bool))


def test_injected_events_truth():
    clip = np.zeros((12, 1, 32, 32), np.float32)
    clip[:, 0, 4:12, :] = np.linspace(0, 1, 32)  # something that never moves
    for kind in ("appear", "stop", "fast", "flicker"):
        event = inject_event(clip, kind, 5, 4, np.random.default_rng(1), size=8)
        ends = [9] if kind != "flicker" else []  # 9 shows where it ends (a 4-frame flicker ends dark)
        np.testing.assert_array_equal(np.flatnonzero(event.labels), [5, 6, 7, 8, *ends])
        np.testing.assert_array_equal(event.clip[:5], clip[:5])  # nothing changes before the event
        np.testing.assert_array_equal(event.clip[9:], clip[9:])
        sides = event.boxes[event.labels, 2:] - event.boxes[event.labels, :2]
        assert (sides >= 8).all() and (sides[0] == 8).all(), (kind, sides)  # moving squares: the path's box
    flicker = inject_event(clip, "flicker", 5, 4, np.random.default_rng(1), size=8)
    y0, x0, y1, x1 = flicker.boxes[5]
    assert np.all(flicker.clip[5, :, y0:y1, x0:x1] >= 0.5) and np.array_equal(flicker.clip[6], clip[6])
    with pytest.raises(ValueError, match="unknown event"):
        inject_event(clip, "explode", 5, 4, np.random.default_rng(0))


def test_evaluation_detects_strong_injected_events_with_persistence():
    results = evaluate_injected(None, "digits", events=("flicker", "fast"), clips=3, clip_length=24, event_length=5)
    assert results["methods"] == ["persistence", "frame_difference"]
    for method in results["methods"]:
        assert results["auc"][method]["flicker"] > 0.8, results["auc"]
        assert results["auc"][method]["fast"] > 0.8, results["auc"]
    assert results["event_frames"] == 2 * 3 * (5 + 1) and results["frames"] == 2 * 3 * (24 - 4)


def test_evaluation_on_a_still_clip_finds_and_locates_every_event():
    # nothing moves but the events: every method must rank the event frames first and point at them
    # (5 frames: a square bouncing 12 px a frame in a 48 px frame is back where it started after 6)
    still = np.tile(np.random.default_rng(0).uniform(0, 0.4, (1, 1, 48, 48)).astype(np.float32), (30, 1, 1, 1))
    results = evaluate_injected(None, still, events=("appear", "fast", "flicker"), clips=1, clip_length=30,
                                event_length=5, event_size=12, patch=8)
    for method in results["methods"]:
        for event in ("appear", "fast", "flicker", "all"):
            assert results["auc"][method][event] == 1.0, (method, event, results["auc"])
            assert results["localisation"][method][event] == 1.0, (method, event, results["localisation"])
    # a score that knows nothing: chance
    rng = np.random.default_rng(0)
    labels = np.zeros(400, bool)
    labels[rng.choice(400, 60, replace=False)] = True
    assert abs(roc_auc(rng.uniform(size=400), labels) - 0.5) < 0.1


def test_evaluation_with_a_run_and_on_the_command_line(persistence_run, tmp_path):
    results = evaluate_injected(persistence_run, "digits", events=("flicker",), clips=2, clip_length=16,
                                event_length=4, patch=8)
    # the persistence run forecasts exactly what the persistence baseline does
    assert results["auc"]["model"]["flicker"] == pytest.approx(results["auc"]["persistence"]["flicker"])
    res = CliRunner().invoke(app, ["anomaly", "--evaluate", "--checkpoint", str(persistence_run), "--clips", "2",
                                   "--clip-length", "16", "--event-length", "4", "--output", str(tmp_path / "ev"),
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert set(saved["auc"]) == {"model", "persistence", "frame_difference"}
    assert "| model |" in (tmp_path / "ev" / "evaluation.md").read_text()
    assert_figure(tmp_path / "ev" / "roc.png")


def test_real_clip_streams_scores_and_evaluates(tmp_path):
    from stpatch.anomaly.frames import open_frames
    from stpatch.datasets import from_numpy, from_video

    mp4 = require("video/carphone_pristine.mp4") / "video" / "carphone_pristine.mp4"
    whole = from_video(mp4, grayscale=True).segments[0]
    streamed = np.concatenate(list(open_frames(mp4).chunks(32, channels=1)))
    np.testing.assert_array_equal(streamed, whole)  # decoded frame by frame, the same frames

    # a persistence run on the clip's first frames (the user's own data: no named validation split)
    config = tiny_grid_config(tmp_path / "run")
    config["model"] = {"name": "persistence"}
    stpatch.train(config, data=from_numpy(whole[:60], layout="TCHW", attrs={"valid_range": (0.0, 1.0)}))
    res = CliRunner().invoke(app, ["anomaly", "--checkpoint", str(tmp_path / "run"), "--input", str(mp4),
                                   "--no-progress", "--output", str(tmp_path / "out")])
    assert res.exit_code == 2 and "--normal" in res.output
    np.save(tmp_path / "normal.npy", whole[:60])
    res = CliRunner().invoke(app, ["anomaly", "--checkpoint", str(tmp_path / "run"), "--input", str(mp4), "--normal",
                                   str(tmp_path / "normal.npy"), "--chunk", "32", "--no-progress",
                                   "--output", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader((tmp_path / "out" / "scores.csv").open()))
    assert len(rows) == 120 - 4 and float(rows[0]["time_s"]) == pytest.approx(4 / 29.97, rel=1e-3)
    stored = json.loads((tmp_path / "run" / "anomaly_threshold.json").read_text())
    assert stored["frames"] == 56 and "normal.npy" in stored["normal"]
    # normal footage stays mostly below the alarm (the threshold is its 1% quantile)
    flagged_share = np.mean([r["flagged"] == "1" for r in rows[:56]])
    assert flagged_share <= 0.05

    results = evaluate_injected(None, mp4, events=("flicker", "appear"), clips=2, clip_length=20, event_length=6,
                                first_frame=60)
    assert results["auc"]["persistence"]["flicker"] > 0.9 and results["auc"]["persistence"]["all"] > 0.8
