"""The text of ``runner --help`` as click prints it on a terminal of 80 columns or more.

``runner --help`` prints it without importing click (which alone takes longer than the 60 ms the
whole command may); ``tests/cli/test_help_listing.py`` checks it is exactly click's output, and
narrower terminals get click's own, re-wrapped, output.
"""

HELP = """\
Usage: runner [OPTIONS] COMMAND [ARGS]...

  Run deployments whose manual intervention steps wait for an authorised
  person.

  Exit codes: 0 success, 1 a step failed, 2 invalid workflow or usage, 3
  aborted at a manual step, 4 an approval timed out, 5 refused, 6 an approval
  source failed or was unreachable, 70 internal error, 75 waiting for approval
  (detached), 130 interrupted.

Options:
  --version   Show the version and exit.
  -h, --help  Show this message and exit.

Commands:
  approval  Approve manual steps with signed files (and, with a server,...
  expr      Evaluate a GitHub-style expression and print its value as...
  plan      Show what a run would do in an environment, step by step,...
  policy    Environment policies: explain a decision, review break-glass...
  resume    Resume a run: ask the sources again and continue after its...
  run       Run a deployment in an environment.
  runs      The history of runs in the state folder.
  server    Serve the approval server (with no subcommand), or administer...
  validate  Check workflow files: exit 0 when clean, 1 when there are...
"""
