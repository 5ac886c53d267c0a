"""The ``aum-score`` command. Each command is a thin call into the library; library errors become
one-line messages with a non-zero exit."""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import click

from ._version import __version__

SCORE_EXAMPLES = """
\b
Examples:
  aum-score logs/ --labels labels.parquet -o aum.parquet
  aum-score logs/ --threshold-class 10 --epochs 1:150 --json
  aum-score score run1/epoch_*.arrow --top 50
"""


class DefaultGroup(click.Group):
    """A group whose first argument, when it is not a command, goes to ``score``:
    ``aum-score LOGDIR ...`` is ``aum-score score LOGDIR ...``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["score", *args]
        return super().parse_args(ctx, args)


@contextmanager
def user_errors() -> Iterator[None]:
    """Bad input -> ``Error: message`` and exit 1, never a traceback."""
    import pyarrow as pa

    from .errors import LogFormatError

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        for warning in caught:
            click.echo(f"Warning: {warning.message}", err=True)
    except (LogFormatError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    except (pa.ArrowException, ValueError) as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


@click.group(
    cls=DefaultGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=SCORE_EXAMPLES,
)
@click.version_option(__version__, prog_name="aum-score")
def main() -> None:
    """Find mislabeled training data with the Area Under the Margin (AUM).

    Reads per-epoch logit logs written by any trainer and ranks training samples by AUM, the
    average over epochs of (logit of the assigned label - largest other logit). Low AUM means
    likely mislabeled. `aum-score LOGDIR ...` runs `aum-score score LOGDIR ...`.
    """


@main.command(epilog=SCORE_EXAMPLES)
@click.argument("logs", nargs=-1, required=True, type=click.Path())
@click.option(
    "--labels",
    type=click.Path(),
    help="Table of sample_id,label (.parquet/.arrow/.csv) for logs without a label column.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    help="Write the result here (.parquet, .csv, .arrow, .feather); written atomically.",
)
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
@click.option(
    "--percentile",
    type=click.FloatRange(0, 100),
    default=99.0,
    show_default=True,
    help="Percentile of the threshold samples' AUMs used as the cut-off.",
)
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
@click.option(
    "--top",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Without -o/--json: how many of the most suspicious samples to print.",
)
@click.option(
    "--bootstrap",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Resamples of the threshold samples for the cut-off's 95% interval and flag_rate.",
)
@click.option(
    "--monitor", is_flag=True, help="Print the per-epoch memorisation monitor table."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON summary object (and the monitor)."
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
    quiet: bool,
) -> None:
    """Score a logit log: the AUM of every sample, most suspicious first.

    LOGS are directories of log files (.arrow, .feather, .arrows, .parquet) or files.
    """
    from .api import score as score_log
    from .memorisation import format_monitor, sparkline
    from .outputs import output_format

    with user_errors():
        if output:
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
        )
        if output:
            result.write(output)
    summary = result.summary
    if as_json:
        report = summary.to_dict()
        report["monitor"] = result.monitor.to_pylist()
        click.echo(json.dumps(report))
        return
    if output:
        if not quiet:
            click.echo(f"wrote {summary.samples} samples to {output}", err=True)
    else:
        click.echo(format_top(result.table, top))
    report = [format_summary(summary)]
    if monitor:
        report.append(format_monitor(result.monitor, summary.epoch_window))
    elif summary.threshold_samples:
        fitted = result.monitor.column("threshold_fitted").to_pylist()
        report.append(f"threshold samples fitted by epoch: {sparkline(fitted)} (see --monitor)")
    click.echo("\n".join(report), err=bool(output))


def format_top(table, top: int) -> str:
    """The first ``top`` rows as aligned text."""
    rows = table.slice(0, top).to_pylist()
    header = ["sample_id", "label", "aum", "count", "threshold_sample", "mislabeled"]
    cells = [header] + [
        [
            str(r["sample_id"]),
            str(r["label"]),
            f"{r['aum']:.4f}",
            str(r["count"]),
            str(r["threshold_sample"]),
            "" if r["mislabeled"] is None else str(r["mislabeled"]),
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells)


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


@main.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False),
    help="Keep the demo's logs and results here (default: a temporary directory).",
)
@click.option(
    "--noise",
    type=click.FloatRange(0, 0.9),
    default=0.2,
    show_default=True,
    help="Fraction of labels flipped uniformly at random.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Training epochs (default: the demo's tuned value).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the demo's report as one JSON object.")
def demo(workdir: str | None, noise: float, seed: int, epochs: int | None, as_json: bool) -> None:
    """Run the whole method offline on real data (UCI handwritten digits).

    Injects label noise, adds threshold samples, trains a small numpy MLP while writing a logit
    log, scores it, and reports how many of the injected flips were found.

    \b
    Example:
      aum-score demo --noise 0.3 --seed 1
    """
    from .demo import run_demo

    kwargs = {} if epochs is None else {"epochs": epochs}
    echo = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    with user_errors():
        report = run_demo(workdir=workdir, noise_rate=noise, seed=seed, echo=echo, **kwargs)
    if as_json:
        click.echo(json.dumps(report.to_dict()))


if __name__ == "__main__":  # pragma: no cover
    main()
