"""The rest of the method as commands: threshold-samples, inject-noise, combine, evaluate,
filter. Each is a thin call into the library."""

from __future__ import annotations

import json
import os

import click

from .common import (
    flag_column_option,
    format_rows,
    json_option,
    labels_option,
    naming_file,
    output_option,
    percentile_option,
    read_label_table,
    seed_option,
    top_option,
    user_errors,
)


@click.command(
    epilog="""
\b
Example:
  aum-score score run1/ --labels assigned1.parquet -o run1.parquet
  aum-score score run2/ --labels assigned2.parquet -o run2.parquet
  aum-score combine run1.parquet run2.parquet -o combined.parquet
"""
)
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@output_option("Write the combined table here.")
@percentile_option("Cut-off percentile for the pooled rule (mislabeled_pooled).", default=95.0)
@top_option()
@json_option()
def combine(
    runs: tuple[str, ...], output: str | None, percentile: float, top: int, as_json: bool
) -> None:
    """Combine the results of runs with disjoint threshold sets.

    Per sample, over the runs in which it was not a threshold sample: the mean AUM (`aum`),
    `mislabeled` by the paper's rule (flagged in any such run), `flagged_runs`, and
    `mislabeled_pooled` (mean AUM against the pooled threshold samples of all runs). Samples that
    were threshold samples in every run are listed last with null AUM.
    """
    from ..combine import combine_runs
    from ..outputs import output_format, write_table
    from ..tables import read_table

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


@click.command("threshold-samples")
@labels_option(
    "Table of sample_id,label (.parquet/.arrow/.csv): the labels you train with.", required=True
)
@click.option(
    "--classes",
    type=click.IntRange(min=1),
    metavar="C",
    help="Number of real classes C (default: largest label + 1); threshold samples get label C.",
)
@seed_option("Seed of the permutation.")
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
@output_option(
    "Write sample_id, label, original_label, threshold_sample here (.parquet/.csv/.arrow).",
    required=True,
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
    from ..noise import assign_threshold_samples, threshold_class_of
    from ..outputs import output_format, write_table

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


@click.command("inject-noise")
@labels_option("Table of sample_id,label (.parquet/.arrow/.csv): the clean labels.", required=True)
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
@seed_option("Seed of the draws.")
@output_option(
    "Write sample_id, label (noisy), true_label here (.parquet/.csv/.arrow).", required=True
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
    from ..noise import inject_noise as inject
    from ..outputs import output_format, write_table

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


@click.command()
@click.argument("result", type=click.Path())
@click.option(
    "--truth",
    required=True,
    type=click.Path(),
    help="Table of sample_id and true_label (e.g. from inject-noise) or a bool is_mislabeled.",
)
@flag_column_option()
@json_option()
def evaluate(result: str, truth: str, flag_column: str, as_json: bool) -> None:
    """Evaluate a result against the truth: precision, recall and F1 of the flags; AUROC,
    average precision and the best F1 of any cut-off of the AUM ranking.

    RESULT is a file written by `aum-score score -o` or `aum-score combine -o`. Threshold samples
    and samples without a flag are left out.

    \b
    Example:
      aum-score evaluate aum.parquet --truth noisy.parquet --json
    """
    from ..evaluation import evaluate as evaluate_tables
    from ..evaluation import format_evaluation
    from ..tables import read_table

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


@click.command("filter")
@click.argument("result", type=click.Path())
@output_option(
    "Write the kept sample ids (and labels) here (.parquet/.csv/.arrow).",
    required=True,
    dest="kept_path",
)
@click.option(
    "--removed",
    "removed_path",
    type=click.Path(),
    help="Write the removed sample ids here (default: KEPT with .removed before the extension).",
)
@flag_column_option()
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
    from ..filtering import filter_result
    from ..outputs import output_format, write_table
    from ..tables import read_table

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
