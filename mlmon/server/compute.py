"""Worker processes that compute per-model figures, so a cold server uses more than one core.

The server's Python work (small polars frames, per-feature numpy, the report's section) holds
the GIL, so one process computes on one core at a time. :class:`ComputePool` starts
``processes`` workers (``python -m mlmon.server.compute``), each a :class:`~mlmon.server.data.Data`
of its own that reads the lake through the server's index: the parent sends, with a model's
first task and after each refresh that changed it, that model's part of the listing (and the
model folders), never the whole lake. Each model is computed by one worker (the first free
one when the model is first asked for, then always the same), so a status and a model page
share what they read.

The parent decides everything about access: a worker is asked for one model's figures by
name and range, never by a user, and its answers go into the parent's cache like figures
computed in process. Tasks are kept per worker in priority order (the overview's statuses
before the model pages' figures), one at a time per worker.

Lifecycle: the workers are started and stopped with the server (:meth:`ComputePool.stop`:
their stdin is closed, then SIGTERM and SIGKILL by pid). A worker whose parent dies (killed,
crashed) sees its stdin close, or its parent id change, and exits within a second. A worker
found dead is started again and its task sent again, once; a task that kills its worker twice
fails with a :class:`~mlmon.errors.LakeError` (the request answers 500).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import marshal
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from typing import IO, Any

from mlmon.errors import LakeError, MlmonError

__all__ = ["FIGURES", "ComputePool", "worker_main"]

log = logging.getLogger("mlmon.server.compute")

#: The :class:`~mlmon.server.data.Data` methods a worker computes (each ``(model, query)``).
FIGURES = frozenset(
    {"section", "page_section", "model_page", "version_section", "versions", "data_quality"}
)

_HEADER = struct.Struct("!Q")


def _send(fh: IO[bytes], obj: Any) -> None:
    body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    fh.write(_HEADER.pack(len(body)) + body)
    fh.flush()


def _recv(fh: IO[bytes]) -> Any:
    head = fh.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError("the other end closed the pipe")
    size = _HEADER.unpack(head)[0]
    body = fh.read(size)
    if len(body) < size:
        raise EOFError("the other end closed the pipe")
    return pickle.loads(body)  # our own worker or parent, over a private pipe


def model_dirs(dirs: dict[str, Any], roots: list[str], model: str) -> dict[str, Any]:
    """The listing of ``model`` (its folders under every indexed prefix) and the prefixes' own
    listings (which name the models)."""
    mine: dict[str, Any] = {}
    heads = [f"{r}/model={model}" for r in roots]
    for r, head in zip(roots, heads, strict=True):
        if r in dirs:
            mine[r] = dirs[r]
        if head in dirs:
            mine[head] = dirs[head]
            for d, _, _ in dirs[head]:
                sub = f"{head}/{d.rstrip('/')}"
                if sub in dirs:
                    mine[sub] = dirs[sub]
    return mine


@dataclasses.dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    tasks: queue.PriorityQueue[tuple[int, int, Any]]
    sent: dict[str, int]  # model -> the generation of the listing this worker has
    thread: threading.Thread | None = None


class ComputePool:
    """``processes`` worker processes computing :data:`FIGURES` for the server's :class:`Data`.

    Parameters
    ----------
    config
        The server's config; the workers get it without the sign-in settings (tokens,
        proxy secret): they never see a request.
    index
        The server's :class:`~mlmon.server.index.LakeIndex`; each task carries the model's
        part of its listing when the worker does not have that generation yet.
    processes
        How many workers.
    """

    def __init__(self, config: Any, index: Any, processes: int) -> None:
        from mlmon.server.config import AuthSettings

        # no sign-in settings; the host is the server's business (a worker listens on nothing)
        self.config = dataclasses.replace(config, auth=AuthSettings(), host="127.0.0.1")
        self.index = index
        self.processes = processes
        self._workers: list[_Worker] = []
        self._owner: dict[str, int] = {}  # model -> worker
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._stopping = False

    # -- lifecycle -----------------------------------------------------------------------
    def _spawn(self) -> subprocess.Popen[bytes]:
        # one polars thread per worker: the workers already use every core, and polars' pool
        # costs more than it gives on the pages' small frames (a status and a page: 0.21
        # instead of 0.24-0.26 s of CPU per model under cProfile, one process)
        env = {"POLARS_MAX_THREADS": "1", **os.environ}
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlmon.server.compute"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,  # the server's own log
            close_fds=True,
        )
        assert proc.stdin is not None
        _send(proc.stdin, self.config)
        return proc

    def start(self) -> None:
        """Start the workers (they import while the server lists the lake)."""
        for i in range(self.processes):
            w = _Worker(self._spawn(), queue.PriorityQueue(), {})
            w.thread = threading.Thread(
                target=self._dispatch, args=(i, w), name=f"mlmon-compute-{i}", daemon=True
            )
            self._workers.append(w)
            w.thread.start()

    @property
    def pids(self) -> list[int]:
        """The workers' process ids (for the logs and the tests)."""
        return [w.proc.pid for w in self._workers]

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every worker by its pid: stdin closed (it exits when idle), then SIGTERM, SIGKILL."""
        with self._lock:  # no task is queued after this (call checks it under the lock)
            self._stopping = True
        for w in self._workers:
            w.tasks.put((-1, -1, None))  # the dispatcher ends
            try:
                if w.proc.stdin is not None:
                    w.proc.stdin.close()
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for w in self._workers:
            for sig in (None, signal.SIGTERM, signal.SIGKILL):
                if sig is not None and w.proc.poll() is None:
                    os.kill(w.proc.pid, sig)
                try:
                    w.proc.wait(max(0.1, deadline - time.monotonic()) if sig is None else 5)
                    break
                except subprocess.TimeoutExpired:
                    continue
        for w in self._workers:
            if w.thread is not None:
                w.thread.join(timeout=5)
            if w.proc.stdout is not None:
                w.proc.stdout.close()
            while True:  # tasks still queued: their requests (and the warm-up) stop waiting
                try:
                    _, _, task = w.tasks.get_nowait()
                except queue.Empty:
                    break
                if task is not None:
                    task[-1].set_exception(
                        LakeError("the server is stopping; figures are not computed")
                    )
        self._workers.clear()

    # -- tasks ---------------------------------------------------------------------------
    def call(self, figure: str, model: str, q: Any, *, priority: int = 1, **kwargs: Any) -> Any:
        """``Data.<figure>(model, q, **kwargs)`` computed by the model's worker (blocks; lower
        ``priority`` first). Raises what the figure raised there."""
        if figure not in FIGURES:
            raise ValueError(f"{figure!r} is not computed by workers")
        with self._lock:
            if self._stopping or not self._workers:
                raise LakeError("the server is stopping; figures are not computed")
            i = self._owner.get(model)
            if i is None:  # the least loaded worker takes a model it has not seen
                i = min(
                    range(len(self._workers)),
                    key=lambda k: (sum(1 for v in self._owner.values() if v == k), k),
                )
                self._owner[model] = i
            done: Future[Any] = Future()
            self._workers[i].tasks.put(
                (priority, next(self._seq), (figure, model, q, kwargs, done))
            )
        return done.result()

    def _dispatch(self, i: int, w: _Worker) -> None:
        while True:
            _, _, task = w.tasks.get()
            if task is None:
                return
            figure, model, q, kwargs, done = task
            if self._stopping:
                done.set_exception(LakeError("the server is stopping; figures are not computed"))
                continue
            for _attempt in (1, 2):  # a worker found dead is started again, the task sent again
                try:
                    ok, value = self._run(w, figure, model, q, kwargs)
                    break
                except (OSError, ValueError, EOFError, pickle.UnpicklingError) as exc:
                    if self._stopping:
                        ok, value = False, LakeError("the server is stopping")
                        break
                    log.error("compute worker %d (pid %d) failed (%s, exit %s); starting another",
                              i, w.proc.pid, exc, w.proc.poll())  # fmt: skip
                    try:
                        self._restart(w)
                    except OSError as spawn:  # the next task tries again
                        log.error("compute worker %d not started again (%s)", i, spawn)
                    ok, value = (
                        False,
                        LakeError(
                            f"a compute worker of the server exited twice computing {figure} of "
                            "this model; the server log has why"
                        ),
                    )
                except Exception:  # a bug here: this task fails, the dispatcher goes on
                    log.exception("compute task %s of %s failed", figure, model)
                    ok, value = False, LakeError(f"computing {figure} failed; see the server log")
                    break
            if ok:
                done.set_result(value)
            else:
                done.set_exception(value)

    def _run(self, w: _Worker, figure: str, model: str, q: Any, kwargs: Any) -> tuple[bool, Any]:
        """One task on worker ``w``, with the model's listing if the worker lacks its generation."""
        snap = self.index.snapshot
        gen = snap.generations.get(model, 0)
        dirs = None
        if w.sent.get(model) != gen:  # marshal: twice as fast as pickle on 17,000 entries
            dirs = marshal.dumps(model_dirs(snap.dirs, list(self.index.roots.values()), model))
        assert w.proc.stdin is not None and w.proc.stdout is not None
        _send(w.proc.stdin, (figure, model, q, kwargs, gen, dirs))
        ok, value = _recv(w.proc.stdout)
        if dirs is not None:
            w.sent[model] = gen
        return ok, value

    def _restart(self, w: _Worker) -> None:
        for fh in (w.proc.stdin, w.proc.stdout):
            try:
                if fh is not None:
                    fh.close()
            except OSError:
                pass
        if w.proc.poll() is None:
            os.kill(w.proc.pid, signal.SIGKILL)
            w.proc.wait()
        w.proc = self._spawn()
        w.sent.clear()


# -- the worker process ------------------------------------------------------------------
def _watch_parent(parent: int) -> None:
    """Exit when the parent is gone (its stdin closes too, but not while a task runs)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def worker_main() -> None:
    """The worker: read the config, then ``(figure, model, query, kwargs, generation, dirs)`` tasks
    from stdin, answer ``(ok, value)`` on stdout, until stdin closes."""
    inp = sys.stdin.buffer
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print cannot break the pipe
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal: the parent stops us
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()

    from mlmon.server.data import Data
    from mlmon.server.index import MirrorIndex

    try:
        config = _recv(inp)
    except EOFError:
        return
    index = MirrorIndex(config)
    data = Data(config, index=index)
    while True:
        try:
            figure, model, q, kwargs, gen, dirs = _recv(inp)
        except EOFError:
            return
        if dirs is not None:
            index.update(model, gen, marshal.loads(dirs))  # from our own server
            data.invalidate({model})
        try:
            if figure not in FIGURES:
                raise LakeError(f"{figure[:40]!r} is not a figure compute workers compute")
            value: Any = (True, getattr(data, figure)(model, q, **kwargs))
        except MlmonError as exc:
            value = (False, exc)
        except Exception as exc:  # a bug: the parent answers 500 and logs it
            log.exception("computing %s of %s failed", figure, model)
            value = (
                False,
                LakeError(
                    f"computing {figure} failed in a compute worker ({exc.__class__.__name__})"
                ),
            )
        try:
            _send(out, value)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            _send(out, (False, LakeError(f"{figure} could not be sent back ({exc})")))


if __name__ == "__main__":
    worker_main()
