"""``aum-score demo``: the whole method on real data, offline."""

from __future__ import annotations

import json

import click

from .common import json_option, seed_option, user_errors


@click.command()
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
@seed_option("Seeds the noise, the threshold samples and training.")
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Training epochs (default: the demo's tuned value).",
)
@json_option("Print the demo's report as one JSON object.")
def demo(workdir: str | None, noise: float, seed: int, epochs: int | None, as_json: bool) -> None:
    """Run the whole method offline on real data (UCI handwritten digits).

    Injects label noise, adds threshold samples, trains a small numpy MLP while writing a logit
    log, scores it, and reports how many of the injected flips were found.

    \b
    Example:
      aum-score demo --noise 0.3 --seed 1
    """
    from ..demo import run_demo

    kwargs = {} if epochs is None else {"epochs": epochs}
    echo = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    with user_errors():
        report = run_demo(workdir=workdir, noise_rate=noise, seed=seed, echo=echo, **kwargs)
    if as_json:
        click.echo(json.dumps(report.to_dict()))
