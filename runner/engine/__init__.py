"""The step runner: executing steps, their file and workflow commands, and secret masking."""
