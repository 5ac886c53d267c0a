"""Exceptions. Every bad-input error names the file, column or row a user needs to fix it."""

from __future__ import annotations


class LogFormatError(ValueError):
    """A logit log, labels file or argument is not what aum-score can score."""


class FragileCutoffWarning(UserWarning):
    """The cut-off rests on very few threshold samples (or there are none)."""
