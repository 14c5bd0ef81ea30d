"""``runner expr 'EXPRESSION' [--context FILE.json]``: evaluate a ``${{ }}`` expression."""

from __future__ import annotations

import click

from runner import expressions
from runner.bounded import loads, read_argument_file
from runner.errors import ExpressionError, UsageError
from runner.expressions.functions import to_json


def evaluate_text(expression: str, context_file: str | None) -> str:
    """The expression's value as JSON; raises ``ExpressionError`` with GitHub's message."""

    contexts: dict[str, object] = {}
    if context_file:
        try:
            text = read_argument_file(context_file, what="context file")
            loaded = loads(text, what="context")
        except (OSError, ValueError) as exc:
            raise UsageError(f"--context {context_file}: {exc}") from None
        if not isinstance(loaded, dict):
            raise UsageError(f"--context {context_file}: expected a JSON object of contexts")
        contexts = loaded
    text = expression.strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    value = expressions.evaluate(text, contexts)
    # as `toJSON` writes it: a number as GitHub prints it (`3`, not `3.0`: numbers are doubles)
    return to_json([value])


@click.command()
@click.argument("expression")
@click.option(
    "--context",
    "context_file",
    type=click.Path(dir_okay=False),
    help="A JSON object whose keys are the contexts (env, inputs, steps, ...).",
)
def expr(expression: str, context_file: str | None) -> int:
    """Evaluate a GitHub-style expression and print its value as JSON (exit 1 on error)."""
    try:
        click.echo(evaluate_text(expression, context_file))
    except ExpressionError as exc:
        click.echo(f"error: {exc.message}", err=True)
        return 1
    return 0
