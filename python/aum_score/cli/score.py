"""``aum-score score``: the AUM of every sample of a logit log."""

from __future__ import annotations

import json
import sys

import click

from .common import (
    format_rows,
    json_option,
    labels_option,
    output_option,
    percentile_option,
    top_option,
    user_errors,
)

SCORE_EXAMPLES = """
\b
Examples:
  aum-score logs/ --labels labels.parquet -o aum.parquet
  aum-score logs/ --threshold-class 10 --epochs 1:150 --json
  aum-score score run1/epoch_*.arrow --top 50
  aum-score logs/ --threshold-class 10 --save-state run.aumstate
  aum-score new_epochs/ --resume run.aumstate --save-state run.aumstate
  aum-score s3://bucket/run1/ --labels s3://bucket/labels.parquet
  aum-score logs/ --workers 8 -o aum.parquet        (a local Dask cluster of 8 processes)
  aum-score logs/ --scheduler tcp://head:8786 --mode shard -o aum_dataset/
"""


@click.command(epilog=SCORE_EXAMPLES)
@click.argument("logs", nargs=-1, type=click.Path())
@labels_option("Table of sample_id,label (.parquet/.arrow/.csv) for logs without a label column.")
@output_option("Write the result here (.parquet, .csv, .arrow, .feather); written atomically.")
@click.option(
    "--epochs",
    metavar="START:END",
    help="Epochs to score, Python slice semantics (1:150 is epochs 1..149; 1: and :150 work). "
    "'auto' or 'START:auto' ends the window where threshold samples start being memorised.",
)
@click.option(
    "--threshold-class",
    type=int,
    metavar="K",
    help="Rows labelled K are threshold samples; enables the mislabeled flags.",
)
@percentile_option("Percentile of the threshold samples' AUMs used as the cut-off.")
@click.option(
    "--nonfinite",
    type=click.Choice(["error", "skip"]),
    default="error",
    show_default=True,
    help="What to do with rows whose logits hold NaN or inf.",
)
@click.option(
    "--allow-label-changes",
    is_flag=True,
    help="Let a sample's rows carry different labels, each row using its own (as the `aum` "
    "library does).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    help="Threads for the margin kernel (default: all cores).",
)
@top_option("Without -o/--json: how many of the most suspicious samples to print.")
@click.option(
    "--bootstrap",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Resamples of the threshold samples for the cut-off's 95% interval and flag_rate.",
)
@click.option("--monitor", is_flag=True, help="Print the per-epoch memorisation monitor table.")
@json_option("Print one JSON summary object (and the monitor).")
@click.option(
    "--resume",
    metavar="STATE",
    help="Extend the state saved by an earlier run (--save-state) with LOGS, only the new "
    "epochs' files; the old files are not read. Its threshold class and --epochs are the "
    "defaults; a file or epoch it already holds is refused. Without LOGS: its result.",
)
@click.option(
    "--save-state",
    metavar="STATE",
    help="Write the scoring state here after a successful run (atomically; may be the "
    "--resume file), to extend it later with new epochs.",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Score on the running Dask cluster at ADDRESS (e.g. tcp://10.0.0.1:8786); needs "
    "aum-score[distributed] on every worker. See docs/distributed.md.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Score on a local Dask cluster of N worker processes (started for this run).",
)
@click.option(
    "--mode",
    type=click.Choice(["auto", "reduce", "shard"]),
    default="auto",
    show_default=True,
    help="With --scheduler/--workers: 'reduce' merges every partial state into one (the same "
    "result as a local run); 'shard' splits the samples by id over the workers and writes "
    "-o as a DIRECTORY, a Parquet dataset with one file per shard; 'auto' shards only when "
    "the samples would not fit one worker's memory.",
)
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda"]),
    default="cpu",
    show_default=True,
    help="Where to compute the margins: 'cuda' streams the log through the GPU (needs "
    "aum_score._cuda, built when a CUDA toolkit is found; same results).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or log lines on stderr.")
def score(
    logs: tuple[str, ...],
    labels: str | None,
    output: str | None,
    epochs: str | None,
    threshold_class: int | None,
    percentile: float,
    nonfinite: str,
    allow_label_changes: bool,
    threads: int | None,
    top: int,
    bootstrap: int,
    monitor: bool,
    as_json: bool,
    resume: str | None,
    save_state: str | None,
    scheduler: str | None,
    workers: int | None,
    mode: str,
    device: str,
    quiet: bool,
) -> None:
    """Score a logit log: the AUM of every sample, most suspicious first.

    LOGS are directories of log files (.arrow, .feather, .arrows, .parquet) or files, local or
    URLs (s3://bucket/logs/, gs://..., configured by the backend's environment variables).
    """
    from ..api import score as score_log
    from ..memorisation import format_monitor, sparkline
    from ..outputs import output_format

    with user_errors():
        if not logs and not resume:
            raise click.UsageError("give LOGS (directories or files), or --resume STATE")
        distributed = scheduler is not None or workers is not None
        if output and not distributed:
            output_format(output)  # a bad output path fails before the work, not after
        result = score_log(
            list(logs),
            labels,
            epochs=epochs,
            threshold_class=threshold_class,
            percentile=percentile,
            nonfinite=nonfinite,
            allow_label_changes=allow_label_changes,
            bootstrap=bootstrap,
            threads=threads,
            progress=not quiet and sys.stderr.isatty(),
            state=resume,
            save_state=save_state,
            scheduler=scheduler,
            workers=workers,
            mode=mode,
            output=output if distributed else None,  # written by the run: maybe a dataset
            device=device,
        )
        if output and not distributed:
            result.write(output)
    summary = result.summary
    if as_json:
        report = summary.to_dict()
        report["monitor"] = result.monitor.to_pylist()
        click.echo(json.dumps(report))
        return
    if output:
        if not quiet:
            shards = getattr(result, "files", None)
            where = f" in {len(shards)} Parquet files (one per shard)" if shards else ""
            click.echo(f"wrote {summary.samples} samples to {output}{where}", err=True)
    else:
        click.echo(format_rows(result.table, top))
    if output and quiet:
        return
    report = [format_summary(summary)]
    if monitor:
        report.append(format_monitor(result.monitor, summary.epoch_window))
    elif summary.threshold_samples:
        fitted = result.monitor.column("threshold_fitted").to_pylist()
        report.append(f"threshold samples fitted by epoch: {sparkline(fitted)} (see --monitor)")
    click.echo("\n".join(report), err=bool(output))


def format_summary(summary) -> str:
    threshold = (
        "none (no threshold samples)" if summary.threshold is None else f"{summary.threshold:.4f}"
    )
    if summary.threshold_interval:
        low, high = summary.threshold_interval
        threshold += f" (95% bootstrap interval {low:.4f} to {high:.4f})"
    start, stop = summary.epoch_window or (None, None)
    window = (
        "all epochs"
        if start is None and stop is None
        else f"epochs {'' if start is None else start}:{'' if stop is None else stop}"
    )
    return (
        f"{summary.samples} samples, {summary.rows} rows, {summary.epochs} epochs "
        f"({window}), {summary.classes} classes; threshold samples: "
        f"{summary.threshold_samples}, cut-off AUM: {threshold}, flagged: {summary.flagged}; "
        f"{summary.seconds:.2f} s ({summary.rows_per_second:,.0f} rows/s)"
    )
