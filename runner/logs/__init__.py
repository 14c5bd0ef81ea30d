"""Telling people what a run does: on a terminal, in GitHub Actions, in GitLab CI, or as JSON."""
