"""What a run evaluates for each step: its contexts, whether it runs, its substituted text."""
