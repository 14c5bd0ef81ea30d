"""Step kinds: a registry from kind (``run``, ``uses``, ``manual``) to the code that executes it."""
