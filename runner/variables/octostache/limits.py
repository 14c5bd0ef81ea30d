"""Bounds that keep evaluation of hostile templates and variables finite and fast.

Octostache itself has none of these: a deep template overflows the .NET stack, a self-referencing
variable throws ``RecursiveDefinitionException`` and exponential expansion runs out of memory. A
runner must instead end cleanly, so:

``MAX_NESTING`` (32)
    Syntactic nesting of one template: ``#{`` inside an indexer, filter option, ``#{if}``,
    ``#{each}``, parentheses in ``#{calc}``... A template nested deeper does not parse, so
    (like any template Octostache cannot parse) it comes back verbatim, and
    :func:`runner.variables.check` reports it.

``MAX_DEPTH`` (64)
    Evaluation depth: nested blocks plus nested variable expansions (a value that references a
    variable whose value references another...). A reference that would go deeper is treated like a
    self-reference: its token is left unreplaced. This also keeps Python's stack far from its limit.

``MAX_WORK`` (4,000,000, plus the template's length)
    Work units for one call: one per character written (intermediate expansions included), 8 per
    ``#{}`` token evaluated or variable value expanded, 16 per ``#{each}`` iteration (weights
    roughly proportional to their cost, so the budget bounds time: a few seconds at worst).
    A 100,000-item ``#{each}`` fits; exceeding it (exponential expansion such as ``A=#{B}#{B}``,
    ``B=#{C}#{C}``..., nested loops over huge lists) raises :class:`SubstitutionLimitError`: a
    result that big is a configuration mistake, not output.

``MAX_CACHED_TEMPLATES`` (512)
    Parsed variable values kept per call, as Octostache keeps a parse cache. Process-wide caches
    are bounded too: 4,096 simple ``#{...}`` tokens, 64 small JSON documents, 256 regexes.

Filter regular expressions (``Replace``, ``Match``) run on Python's ``re``, which has no
timeout: a catastrophically backtracking pattern supplied by a template is not bounded here.
"""

from __future__ import annotations

# the class lives with every other error; imported from here too
from runner.errors import SubstitutionLimitError as SubstitutionLimitError

MAX_NESTING = 32
MAX_DEPTH = 64
MAX_WORK = 4_000_000
MAX_CACHED_TEMPLATES = 512
