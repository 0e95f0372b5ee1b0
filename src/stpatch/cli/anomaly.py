"""``stpatch anomaly``: flag unusual frames of a clip with a run's forecast error, or evaluate on injected events."""

from __future__ import annotations

from pathlib import Path

import typer

from stpatch.cli._common import fail, guard_warnings


def anomaly(
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="A run directory or checkpoint trained on video-like grids."),
    input: Path | None = typer.Option(None, "--input", help="The clip: a video (.mp4, .gif ...), a folder of frames or a .npy (T, C, H, W)."),
    output: Path | None = typer.Option(None, "--output", help="Folder for scores.csv, scores.png, flagged.gif "
                                       "(default anomaly_CLIP; with --evaluate, anomaly_eval)."),
    patch: int | None = typer.Option(None, "--patch", help="Pixels per error-map patch (default: the model's patch size)."),
    quantile: float = typer.Option(0.01, "--quantile", help="Share of normal frames allowed to raise an alarm "
                                   "(the threshold is this quantile of the normal PSNR)."),
    threshold: float | None = typer.Option(None, "--threshold", help="A PSNR threshold in dB instead of the calibrated one."),
    normal: Path | None = typer.Option(None, "--normal", help="Normal footage to calibrate on (default: the run's validation split)."),
    chunk: int = typer.Option(256, "--chunk", help="Frames read and scored at a time (bounds memory)."),
    max_gif_frames: int = typer.Option(60, "--max-gif-frames", help="At most this many flagged frames in flagged.gif."),
    strict: bool = typer.Option(False, "--strict", help="Refuse input far outside what training saw (default: warn)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    evaluate: bool = typer.Option(False, "--evaluate", help="Score injected events on held-out normal clips instead."),
    source: str = typer.Option("digits", "--source", help="With --evaluate: digits, moving_mnist or a clip's path."),
    clips: int = typer.Option(8, "--clips", help="With --evaluate: normal clips (each gets every event kind)."),
    clip_length: int = typer.Option(40, "--clip-length", help="With --evaluate: frames per clip."),
    event_length: int = typer.Option(8, "--event-length", help="With --evaluate: frames per event."),
    first_frame: int = typer.Option(0, "--first-frame", help="With --evaluate on a clip: skip frames before this one "
                                    "(e.g. those the run trained on)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Flag unusual frames from the next-frame forecast error (regularity score, threshold, heat maps)."""
    try:
        with guard_warnings():
            if evaluate:
                _evaluate(checkpoint, source, output or Path("anomaly_eval"), clips, clip_length, event_length,
                          patch, first_frame, seed, progress)
                return
            if checkpoint is None or input is None:
                raise ValueError("pass --checkpoint RUN and --input CLIP (or --evaluate)")
            from stpatch.anomaly import score, write_outputs
            from stpatch.anomaly.scoring import default_output_dir

            result = score(checkpoint, input, patch=patch, threshold="calibrated" if threshold is None else threshold,
                           quantile=quantile, chunk=chunk, progress=progress, strict=strict,
                           keep_overlays=max_gif_frames, normal=normal)
            paths = write_outputs(result, output or default_output_dir(input), max_gif_frames)
    except (FileNotFoundError, ValueError, ImportError) as err:
        fail(err)
    worst = int(result.score.argmin())
    typer.echo(f"{len(result.frames)} frames scored, {int(result.flagged.sum())} flagged "
               f"(PSNR below {result.threshold:.2f} dB); least regular: frame {int(result.frames[worst])} "
               f"({result.psnr[worst]:.2f} dB)")
    for kind, path in paths.items():
        typer.echo(f"{kind}: {path}" if path else f"{kind}: none (no frame flagged)")


def _evaluate(checkpoint, source, output, clips, clip_length, event_length, patch, first_frame, seed, progress) -> None:
    from stpatch.anomaly import evaluate_injected, write_evaluation
    from stpatch.anomaly.evaluation import results_table

    results = evaluate_injected(checkpoint, source, clips=clips, clip_length=clip_length, event_length=event_length,
                                patch=patch, first_frame=first_frame, seed=seed, progress=progress)
    paths = write_evaluation(results, output)
    typer.echo(results_table(results))
    for kind, path in paths.items():
        typer.echo(f"{kind}: {path}")
