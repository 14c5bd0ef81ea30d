"""Pausing Python's cyclic garbage collector while a workflow is loaded and planned, and while a
command's modules are imported.

Loading allocates a node, a value and a position for every key and value, planning a parse tree
and a state for every step, and all of them stay alive until the command ends, with almost no
reference cycles among them. The collector's passes over them find nothing, yet cost a third of
loading a big file and of planning it (a 5,000-step plan: 2.8 s with it, 1.9 s without).
Reference counting still frees everything as before; the collector runs again after the pause.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

#: whether this process's own command line paused the collector over its start-up
_start_up_paused = False
#: whether this process runs its own command line (not a test calling ``main``)
_own_command_line = False


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block, or for each call of a function it decorates
    (a no-op when it is already off)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def start_up() -> None:
    """Pause the collector while the command's modules are imported. Importing them creates the
    classes, functions and constants that live as long as the process, hundreds of thousands of
    objects with almost no garbage among them, and the collector's passes over them were an
    eighth of a command's start-up. Only for the process's own command line
    (``runner.cli.main``): a test calling ``main`` keeps its collector as it was."""
    global _start_up_paused, _own_command_line
    _own_command_line = True
    if gc.isenabled():
        gc.disable()
        _start_up_paused = True


def end_start_up() -> None:
    """Once the command's modules are imported: move everything alive into the collector's
    permanent generation (``gc.freeze``), so that the collections of a long run (a wait, many
    steps) no longer walk the modules' objects each time, and turn the collector back on."""
    global _start_up_paused
    if _start_up_paused:
        _start_up_paused = False
        gc.freeze()
        gc.enable()


@contextlib.contextmanager
def more_start_up() -> Iterator[None]:
    """:func:`start_up` again, for a command that imports more once its options are read (the
    server's stack: FastAPI, SQLAlchemy, uvicorn, about half a second of imports); a no-op but
    in the process's own command line."""
    if _own_command_line and gc.isenabled():
        start_up()
    try:
        yield
    finally:
        end_start_up()
