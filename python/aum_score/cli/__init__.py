"""The ``aum-score`` command line (click). Each command is a thin call into the library;
library errors become one-line messages with a non-zero exit."""

from __future__ import annotations

import click

from .._version import __version__
from .demo import demo
from .method import combine, evaluate, filter_command, inject_noise, threshold_samples
from .score import SCORE_EXAMPLES, score


class DefaultGroup(click.Group):
    """A group whose first argument, when it is not a command, goes to ``score``:
    ``aum-score LOGDIR ...`` is ``aum-score score LOGDIR ...``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["score", *args]
        return super().parse_args(ctx, args)


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


for command in (score, threshold_samples, combine, filter_command, inject_noise, evaluate, demo):
    main.add_command(command)

__all__ = ["main"]
