"""What SIGINT and SIGTERM do to a run (see :class:`Signals`), and ending a run at once after
one: its record cancelled, its locks released, exit 130."""

from __future__ import annotations

import queue
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from runner.engine.deployment_lock import DeploymentLock
from runner.engine.lock import LocalLock, run_lock
from runner.engine.record import RecordStore
from runner.engine.run import Run, cancel_record, utc_now
from runner.errors import ExitCode, RefusedError, StateError
from runner.steps.base import RunLog


def signum_of(exc: KeyboardInterrupt) -> int:
    """The signal a ``KeyboardInterrupt`` came from (``runner.cli.main`` raises it with the
    number for SIGTERM and SIGINT; Python's own handler, for SIGINT, gives none)."""
    return exc.args[0] if exc.args and isinstance(exc.args[0], int) else int(signal.SIGINT)


def cancel_started(run: Run, exc: KeyboardInterrupt) -> int:
    """``cancel_now`` for a signal between the first record and ``execute``, before any
    deployment lock was asked for."""
    return cancel_now(run, signum_of(exc), ())


def cancel_recorded(store: RecordStore, run_id: str, exc: KeyboardInterrupt, log: RunLog) -> int:
    """A signal while ``runner resume`` prepares (reads the record, pins the trust, checks the
    files): the run is cancelled all the same, as ``cancel_now`` does, if this process can take
    the run's own lock; with no record (``--server`` fetching it), the CLI's one line."""
    if not store.exists(run_id):
        raise exc
    name = signal.Signals(signum_of(exc)).name
    ended = False
    try:
        with run_lock(store, run_id):
            record = store.load(run_id)
            ended = record.finished  # by this process, on a second signal
            if not ended:
                log.write(f"received {name}: cancelling the run")
                cancel_record(record, utc_now())
                store.save(record, durable=True)
                log.write(f"Run {run_id} was cancelled ({name})")
            # the lock a run detached at a ``block-deployments`` step kept (this process never
            # took it, so it holds no token of it: it gives up the run's)
            LocalLock(store, record.workflow_name, record.environment, run_id).release_kept()
    except StateError as error:  # a RefusedError too, but not another process's run
        log.write(f"received {name}: stopping; {error.message}")
    except RefusedError:
        log.write(f"received {name}: stopping (run {run_id} is another process's)")
    except (OSError, ValueError, TypeError, KeyError):
        raise exc from None  # an unreadable record: resume reports it; here, the one line
    finally:
        log.close()
    if ended:
        raise exc
    return int(ExitCode.INTERRUPTED)


def cancel_now(
    run: Run, signum: int, locks: Sequence[DeploymentLock], *, announce: bool = True
) -> int:
    """End ``run`` at once after a signal: its record cancelled (steps left running or waiting
    are cancelled, those not started skipped), its locks released, the log's open group closed;
    exit 130. Only while holding the run's own lock: without it, another process has the run."""
    name = signal.Signals(signum).name
    try:
        with run_lock(run.store, run.record.run_id):
            if not run.record.finished:
                if announce:
                    run.log.write(f"received {name}: cancelling the run")
                run.cancel_now()
                run.log.write(f"Run {run.record.run_id} was cancelled ({name})")
            for lock in locks:
                lock.release()
    except StateError as error:  # a RefusedError too, but not another process's run
        run.log.write(f"received {name}: stopping; {error.message}")
    except RefusedError:
        run.log.write(f"received {name}: stopping (run {run.record.run_id} is another process's)")
    finally:
        run.log.close()
    return int(ExitCode.INTERRUPTED)


class Signals:
    """What SIGINT / SIGTERM do to a run, from the moment its record exists.

    Before its steps begin (waiting for a lock, on the approval server), a signal raises
    ``KeyboardInterrupt`` at once wherever the main thread is: no step runs (as GitHub runs no
    step of a job cancelled before it started), and ``execute`` records the run as cancelled.
    Once the steps have begun, the first signal only hands itself to a thread, which cancels
    the run: running steps' process groups are stopped and every wait ends (``runner.cancel``);
    ``always()`` steps still run. A second signal stops the runner at once.

    Handing to a thread because Python runs the handler in the main thread between two
    bytecodes, maybe while that thread holds a lock that cancelling takes (the log's, an
    event's), and waiting on it there would never end. ``SimpleQueue.put`` is safe there."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.received: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        #: the first signal received
        self.first: int | None = None
        self.stepping = False

    def steps_begin(self) -> None:
        self.stepping = True

    def handle(self, signum: int, frame: object) -> None:
        if self.first is not None or not self.stepping:
            if self.first is not None:
                # the steps still running (``always()`` ones) must not outlive the runner
                self.run.groups.kill_all()
            else:
                self.first = signum
            if self.run.groups.defer_interrupt(signum):
                # raised once the step being started has its group registered, or once the
                # program capture() is starting can be killed
                return
            raise KeyboardInterrupt(signum)
        self.first = signum
        self.received.put(signum)

    def cancel(self) -> None:
        signum = self.received.get()
        if signum is None:
            return
        end_question = getattr(sys.modules.get("runner.approvals.prompt"), "end_question", None)
        if end_question is not None:
            end_question()  # a question on the terminal: what follows starts a line of its own
        self.run.log.write(f"received {signal.Signals(signum).name}: cancelling the run")
        self.run.groups.cancel_all()


#: how long the end of a run waits for the thread that cancels it to finish its work
JOIN_SECONDS = 2.0


@contextmanager
def cancellation(run: Run) -> Iterator[Signals]:
    """SIGINT and SIGTERM handled as :class:`Signals` says, for the time of the block. A signal
    the runner was started ignoring stays ignored, as ``runner.cli.main`` keeps it: ``runner run
    ... &`` in a script gets SIGINT ignored, so that a Ctrl-C typed at the script's terminal is
    not for it (it was, and cancelled the run)."""
    previous = {
        sig: handler
        for sig in (signal.SIGINT, signal.SIGTERM)
        if (handler := signal.getsignal(sig)) is not signal.SIG_IGN
    }
    signals = Signals(run)
    canceller = threading.Thread(target=signals.cancel, name="runner-cancel", daemon=True)
    canceller.start()
    for sig in previous:
        signal.signal(sig, signals.handle)
    try:
        yield signals
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signals.received.put(None)
        # its line ("received SIGINT: cancelling the run") comes before the run's last, and it
        # writes nothing once the block is over (a log closed by then raised in the thread)
        canceller.join(JOIN_SECONDS)
