"""The terminal log: compact lines per step with elapsed times; colour on a terminal unless
``NO_COLOR`` is set (https://no-color.org)."""

from __future__ import annotations

from runner.logs.base import BaseLog


class TextLog(BaseLog):
    """The base format as it is; a class of its own so the choice of format reads plainly."""
