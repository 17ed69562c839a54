"""How an edge process ends: exit codes of ``mlmon edge once`` and the SIGTERM bound.

Exit codes of ``mlmon edge once`` (:func:`once_exit_code`), the first that applies:

====  ========================================================================
code  meaning
====  ========================================================================
143   stopped by SIGTERM (130: SIGINT) before every task ran; 128 + signal
3     lake unreachable: objects are waiting in the spool on the state volume
      (nothing is lost; the next run sends them first). The bucket costs one
      bounded attempt at the first write (``lake.attempts`` x the
      ``lake.connect_timeout``/``read_timeout``) and one at the end of the
      cycle; every other object goes to the spool at once
6     a task failed: an error in a stream, batch, labels or imaging task, a
      batch job that did not succeed, or a full spool that refused objects
1     golden checks failed: the pass rate fell below ``min_pass_rate``, or no
      probe got an answer (endpoint unreachable)
0     every task ran, every golden check passed, every object reached the lake
====  ========================================================================

and, as for every ``mlmon`` command, 2 for a wrong ``edge.yaml`` or argument
and 5 for a missing optional extra. The JSON line ``edge once`` prints says
which models and tasks are concerned.

On SIGTERM or SIGINT (:class:`Shutdown`) the collector stops at once: probes
in flight and batch-job waits are abandoned (nothing of an unfinished golden
run is written), no further task starts, a CloudEvents sink stops accepting
(requests in progress finish) and what it accepted is written and committed,
and the process exits. Whatever is
still running :data:`SHUTDOWN_DEADLINE_S` after the signal (a bucket that hangs,
a long stream backlog) is cut off by exiting anyway: every write of the edge is
crash-safe (one PUT per object, spool and checkpoints by atomic rename), so this
is no worse than ``kill -9``. A second signal exits at once. The edge manifests
under ``deploy/k8s`` set ``terminationGracePeriodSeconds`` above this bound.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

__all__ = [
    "EXIT_GOLDEN",
    "EXIT_LAKE",
    "EXIT_OK",
    "EXIT_TASK",
    "ONCE_EXIT_CODES",
    "SHUTDOWN_DEADLINE_S",
    "Shutdown",
    "once_exit_code",
]

log = logging.getLogger("mlmon.edge")

EXIT_OK = 0
EXIT_GOLDEN = 1
EXIT_LAKE = 3
EXIT_TASK = 6

SHUTDOWN_DEADLINE_S = 10.0
"""After SIGTERM the process has exited within this many seconds, whatever it was doing."""

ONCE_EXIT_CODES = """\
exit codes (the first that applies):
  143  stopped by SIGTERM (130: SIGINT) before every task ran (128 + signal)
  3    lake unreachable: objects wait in the spool on the state volume
  6    a task failed (stream, batch, labels, imaging; a full spool)
  1    golden checks failed (below min_pass_rate, or the endpoint unreachable)
  0    every task ran, every golden check passed, every object reached the lake
  2    wrong edge.yaml or argument;  5  a missing optional extra
"""
"""The exit codes as ``mlmon edge once --help`` and the README show them."""


def once_exit_code(report: Any, signum: int | None = None) -> int:
    """The exit code of ``mlmon edge once`` for a cycle's :class:`~mlmon.edge.collector.CycleReport`.

    Parameters
    ----------
    report
        What the cycle did: ``stopped``, ``spooled_objects``, ``errors`` and
        ``golden_failed`` are read.
    signum
        The signal that stopped the cycle, if any.

    Examples
    --------
    >>> from mlmon.edge.collector import CycleReport
    >>> once_exit_code(CycleReport(golden_checks=20, golden_passed=19, golden_failed=["risk"]))
    1
    >>> once_exit_code(CycleReport(golden_failed=["risk"], spooled_objects=4))
    3
    """
    if report.stopped and signum is not None:
        return 128 + signum
    if report.spooled_objects:
        return EXIT_LAKE
    if report.errors:
        return EXIT_TASK
    if report.golden_failed:
        return EXIT_GOLDEN
    return EXIT_OK


class Shutdown:
    """SIGTERM/SIGINT set ``stop``; the process exits at most ``deadline_s`` later.

    Parameters
    ----------
    stop
        The event the collector watches (``Collector.run(stop)``, ``run_once(stop)``).
    deadline_s
        How long the collector may take to finish after the first signal before
        the process exits anyway (exit code 128 + signal).
    """

    def __init__(
        self, stop: threading.Event | None = None, deadline_s: float = SHUTDOWN_DEADLINE_S
    ) -> None:
        self.stop = stop if stop is not None else threading.Event()
        self.deadline_s = deadline_s
        self.signum: int | None = None

    def install(self) -> Shutdown:
        """Handle SIGTERM and SIGINT in this (the main) thread from now on."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # a second signal: do not wait any longer
            self._exit(signum, "second signal")
        self.signum = signum
        self.stop.set()
        log.info(
            "stopping", extra={"signal": signal.Signals(signum).name, "deadline_s": self.deadline_s}
        )
        timer = threading.Timer(self.deadline_s, self._exit, (signum, "shutdown deadline passed"))
        timer.daemon = True
        timer.start()

    @staticmethod
    def _exit(signum: int, why: str) -> None:
        log.error("exiting now: %s", why, extra={"signal": signal.Signals(signum).name})
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(128 + signum)
