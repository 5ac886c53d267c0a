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
@click.option("--monitor", is_flag=True, help="Print the per-epoch memorisation monitor table.")
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


def format_rows(table, top: int) -> str:
    """The first ``top`` rows of a result table as aligned text."""
    header = table.column_names
    rows = table.slice(0, top).to_pylist()
    cells = [header] + [[_cell(row[name]) for name in header] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells)


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


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


@main.command(
    epilog="""
\b
Example:
  aum-score score run1/ --labels assigned1.parquet -o run1.parquet
  aum-score score run2/ --labels assigned2.parquet -o run2.parquet
  aum-score combine run1.parquet run2.parquet -o combined.parquet
"""
)
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", type=click.Path(), help="Write the combined table here.")
@click.option(
    "--percentile",
    type=click.FloatRange(0, 100),
    default=99.0,
    show_default=True,
    help="Cut-off percentile for the pooled rule (mislabeled_pooled).",
)
@click.option("--top", type=click.IntRange(min=0), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object.")
def combine(
    runs: tuple[str, ...], output: str | None, percentile: float, top: int, as_json: bool
) -> None:
    """Combine the results of runs with disjoint threshold sets.

    Per sample, over the runs in which it was not a threshold sample: the mean AUM (`aum`),
    `mislabeled` by the paper's rule (flagged in any such run), `flagged_runs`, and
    `mislabeled_pooled` (mean AUM against the pooled threshold samples of all runs). Samples that
    were threshold samples in every run are listed last with null AUM.
    """
    from .combine import combine_runs
    from .outputs import output_format, write_table
    from .tables import read_table

    with user_errors():
        if output:
            output_format(output)
        tables = [read_table(path, what="result") for path in runs]
        result = combine_runs(tables, percentile=percentile, names=list(runs))
        if output:
            write_table(result.table, output)
    if as_json:
        click.echo(json.dumps(result.summary.to_dict()))
        return
    if not output:
        click.echo(format_rows(result.table, top))
    s = result.summary
    click.echo(
        f"{s.samples} samples from {s.runs} runs ({s.never_scored} never scored as a normal "
        f"sample); flagged: {s.flagged} (any run), {s.flagged_pooled} (pooled threshold "
        "samples)",
        err=bool(output),
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


def read_label_table(path: str):
    """(table, sample ids, int64 labels) of a `sample_id`,`label` file, errors naming it."""
    from .tables import id_column, int_column, read_table, require_columns

    table = read_table(path, what="labels file")
    require_columns(table, path, "sample_id", "label", what="labels file")
    return table, id_column(table, path), int_column(table, path, "label")


@contextmanager
def naming_file(path: str) -> Iterator[None]:
    """The noise functions know no file: put the input file's name in front of their errors."""
    from .errors import LogFormatError

    try:
        yield
    except LogFormatError as exc:
        raise LogFormatError(f"{path}: {exc}") from None


@main.command("threshold-samples")
@click.option(
    "--labels",
    required=True,
    type=click.Path(),
    help="Table of sample_id,label (.parquet/.arrow/.csv): the labels you train with.",
)
@click.option(
    "--classes",
    type=click.IntRange(min=1),
    metavar="C",
    help="Number of real classes C (default: largest label + 1); threshold samples get label C.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the permutation.")
@click.option(
    "--set",
    "set_index",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    metavar="K",
    help="Which slice of the permutation: sets 1, 2, ... of one seed are disjoint.",
)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    help="Number of threshold samples (default: N // (C + 1), as in the paper).",
)
@click.option(
    "--fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Fraction of the samples to make threshold samples (instead of --count).",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(),
    help="Write sample_id, label, original_label, threshold_sample here (.parquet/.csv/.arrow).",
)
def threshold_samples(
    labels: str,
    classes: int | None,
    seed: int,
    set_index: int,
    count: int | None,
    fraction: float | None,
    output: str,
) -> None:
    """Pick threshold samples: give a seeded random N // (C + 1) of the samples the extra label C.

    Train on the new labels with C + 1 outputs, then score with `--labels ASSIGNED`. For the
    paper's two runs, use the same seed with --set 1 and --set 2 (disjoint sets).

    \b
    Example:
      aum-score threshold-samples --labels labels.parquet --seed 0 --set 1 -o assigned1.parquet
    """
    from .noise import assign_threshold_samples, threshold_class_of
    from .outputs import output_format, write_table

    with user_errors():
        output_format(output)
        if count is not None and fraction is not None:
            raise click.UsageError("give --count or --fraction, not both")
        table, ids, original = read_label_table(labels)
        if threshold_class_of(table, labels) is not None:
            raise click.ClickException(
                f"{labels}: already has threshold samples; assign from the original labels"
            )
        with naming_file(labels):
            assigned = assign_threshold_samples(
                ids,
                original,
                num_classes=classes,
                seed=seed,
                set_index=set_index,
                count=count,
                fraction=fraction,
            )
        write_table(assigned, output)
    chosen = assigned.column("threshold_sample").to_numpy(zero_copy_only=False)
    threshold_class = int(assigned.column("label").to_numpy()[chosen][0])
    click.echo(
        f"{int(chosen.sum())} of {assigned.num_rows} samples (seed {seed}, set {set_index}) are "
        f"threshold samples with label {threshold_class}; train with {threshold_class + 1} "
        f"outputs; wrote {output}",
        err=True,
    )


@main.command("inject-noise")
@click.option(
    "--labels",
    required=True,
    type=click.Path(),
    help="Table of sample_id,label (.parquet/.arrow/.csv): the clean labels.",
)
@click.option(
    "--rate",
    required=True,
    type=click.FloatRange(0, 1),
    help="Probability that a sample's label is changed.",
)
@click.option(
    "--kind",
    type=click.Choice(["uniform", "flip"]),
    default="uniform",
    show_default=True,
    help="uniform: any other class, equally likely; flip: class c becomes (c + 1) mod C.",
)
@click.option(
    "--classes",
    type=click.IntRange(min=2),
    metavar="C",
    help="Number of classes C (default: largest label + 1).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the draws.")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(),
    help="Write sample_id, label (noisy), true_label here (.parquet/.csv/.arrow).",
)
def inject_noise(
    labels: str, rate: float, kind: str, classes: int | None, seed: int, output: str
) -> None:
    """Corrupt labels for an experiment, with the paper's uniform or flip noise.

    The output's `true_label` column is the truth for `aum-score evaluate`.

    \b
    Example:
      aum-score inject-noise --labels clean.csv --rate 0.2 --kind uniform --seed 0 -o noisy.csv
    """
    from .noise import inject_noise as inject
    from .outputs import output_format, write_table

    with user_errors():
        output_format(output)
        _, ids, clean = read_label_table(labels)
        with naming_file(labels):
            noisy = inject(ids, clean, rate=rate, kind=kind, num_classes=classes, seed=seed)
        write_table(noisy, output)
    changed = int((noisy["label"].to_numpy() != noisy["true_label"].to_numpy()).sum())
    click.echo(
        f"changed {changed} of {noisy.num_rows} labels ({100 * changed / noisy.num_rows:.1f}%, "
        f"{kind}, rate {rate}, seed {seed}); wrote {output}",
        err=True,
    )


@main.command()
@click.argument("result", type=click.Path())
@click.option(
    "--truth",
    required=True,
    type=click.Path(),
    help="Table of sample_id and true_label (e.g. from inject-noise) or a bool is_mislabeled.",
)
@click.option(
    "--flag-column",
    default="mislabeled",
    show_default=True,
    help="The result's bool column of flags (e.g. mislabeled_pooled of a combined result).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate(result: str, truth: str, flag_column: str, as_json: bool) -> None:
    """Evaluate a result against the truth: precision, recall and F1 of the flags; AUROC,
    average precision and the best F1 of any cut-off of the AUM ranking.

    RESULT is a file written by `aum-score score -o` or `aum-score combine -o`. Threshold samples
    and samples without a flag are left out.

    \b
    Example:
      aum-score evaluate aum.parquet --truth noisy.parquet --json
    """
    from .evaluation import evaluate as evaluate_tables
    from .evaluation import format_evaluation
    from .tables import read_table

    with user_errors():
        evaluation = evaluate_tables(
            read_table(result, what="result file"),
            read_table(truth, what="truth file"),
            flag_column=flag_column,
            result_name=result,
            truth_name=truth,
        )
    if as_json:
        click.echo(json.dumps(evaluation.to_dict()))
    else:
        click.echo(format_evaluation(evaluation))


@main.command("filter")
@click.argument("result", type=click.Path())
@click.option(
    "-o",
    "--output",
    "kept_path",
    required=True,
    type=click.Path(),
    help="Write the kept sample ids (and labels) here (.parquet/.csv/.arrow).",
)
@click.option(
    "--removed",
    "removed_path",
    type=click.Path(),
    help="Write the removed sample ids here (default: KEPT with .removed before the extension).",
)
@click.option(
    "--flag-column",
    default="mislabeled",
    show_default=True,
    help="The result's bool column of flags (e.g. mislabeled_pooled of a combined result).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    metavar="B",
    help="Your training batch size: prints the one that keeps iterations per epoch the same.",
)
def filter_command(
    result: str,
    kept_path: str,
    removed_path: str | None,
    flag_column: str,
    batch_size: int | None,
) -> None:
    """Split a result into the samples to keep for retraining and the flagged ones to remove.

    A null flag (a threshold sample) keeps the sample, with a null label.

    \b
    Example:
      aum-score filter aum.parquet -o kept.parquet --batch-size 256
    """
    import os

    from .filtering import filter_result
    from .outputs import output_format, write_table
    from .tables import read_table

    if removed_path is None:
        stem, ext = os.path.splitext(kept_path)
        removed_path = f"{stem}.removed{ext}"
    with user_errors():
        output_format(kept_path)
        output_format(removed_path)
        if os.path.abspath(kept_path) == os.path.abspath(removed_path):
            raise click.UsageError("--removed must differ from -o")
        filtered = filter_result(
            read_table(result, what="result file"),
            flag_column=flag_column,
            batch_size=batch_size,
            result_name=result,
        )
        write_table(filtered.kept, kept_path)
        write_table(filtered.removed, removed_path)
    click.echo(f"{filtered.summary()}; wrote {kept_path} and {removed_path}")
    if filtered.batch_size is not None:
        click.echo(f"batch size: {batch_size} -> {filtered.batch_size} (same iterations per epoch)")


if __name__ == "__main__":  # pragma: no cover
    main()
