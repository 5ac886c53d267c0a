"""What the commands share: error handling, option decorators, text tables."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import click


@contextmanager
def user_errors() -> Iterator[None]:
    """Bad input -> ``Error: message`` and exit 1, never a traceback."""
    import pyarrow as pa

    from ..errors import LogFormatError

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


@contextmanager
def naming_file(path: str) -> Iterator[None]:
    """The noise functions know no file: put the input file's name in front of their errors."""
    from ..errors import LogFormatError

    try:
        yield
    except LogFormatError as exc:
        raise LogFormatError(f"{path}: {exc}") from None


def read_label_table(path: str):
    """(table, sample ids, int64 labels) of a `sample_id`,`label` file, errors naming it."""
    from ..tables import id_column, int_column, read_table, require_columns

    table = read_table(path, what="labels file")
    require_columns(table, path, "sample_id", "label", what="labels file")
    return table, id_column(table, path), int_column(table, path, "label")


def output_option(help: str, *, required: bool = False, dest: str = "output"):
    """``-o/--output FILE``, the format chosen by the extension."""
    return click.option("-o", "--output", dest, required=required, type=click.Path(), help=help)


def json_option(help: str = "Print one JSON object on stdout."):
    return click.option("--json", "as_json", is_flag=True, help=help)


def percentile_option(help: str, default: float = 99.0):
    return click.option(
        "--percentile",
        type=click.FloatRange(0, 100),
        default=default,
        show_default=True,
        help=help,
    )


def top_option(help: str = "How many of the most suspicious samples to print."):
    return click.option(
        "--top", type=click.IntRange(min=0), default=20, show_default=True, help=help
    )


def flag_column_option():
    return click.option(
        "--flag-column",
        default="mislabeled",
        show_default=True,
        help="The result's bool column of flags (e.g. mislabeled_pooled of a combined result).",
    )


def labels_option(help: str, *, required: bool = False):
    return click.option("--labels", required=required, type=click.Path(), help=help)


def seed_option(help: str):
    return click.option("--seed", type=int, default=0, show_default=True, help=help)


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
