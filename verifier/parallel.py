"""Worker processes for run and sweep: one pool factory (spawned, limits and threads set in each worker)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

from .limits import LIMITS

T = TypeVar("T")
R = TypeVar("R")


def worker_init(limits: dict[str, int], threads: int) -> None:
    """Each worker: the parent's limits, and its share of the cores."""
    import torch

    from .limits import configure

    configure(**limits)
    torch.set_num_threads(threads)  # the cores are shared between the workers: no oversubscription
    from .case.loading import reimport_ops

    reimport_ops()  # the functions the parent's case files registered (ops:, --ops)


def pool(jobs: int, threads: int | None = None) -> ProcessPoolExecutor:
    """A pool of `jobs` spawned workers (torch must not be forked once initialised), each with the parent's limits
    and `threads` torch threads (default: the cores divided between the workers)."""
    import multiprocessing
    from dataclasses import asdict

    threads = threads if threads is not None else max(1, (os.cpu_count() or 1) // jobs)
    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=worker_init, initargs=(asdict(LIMITS), threads))


def map_unordered(fn: Callable[..., R], items: Iterable[T], jobs: int, threads: int | None = None,
                  **kwargs: Any) -> Iterator[tuple[int, R]]:
    """(index, fn(item, **kwargs)) for each item as workers finish them. An interrupt cancels what has not started."""
    from concurrent.futures import as_completed

    with pool(jobs, threads) as workers:
        futures: dict[Future[R], int] = {workers.submit(fn, item, **kwargs): k for k, item in enumerate(items)}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BaseException:
            workers.shutdown(wait=False, cancel_futures=True)
            raise


GRACE = 1.0  # seconds past a case's limit before its worker is killed (the in-process alarm gets the first chance)


class _Worker:
    """One spawned process that verifies cases sent to it, one at a time (a pipe each way)."""

    def __init__(self, fn: Callable[..., Any], threads: int, warm: Callable[[], None] | None) -> None:
        import multiprocessing
        from dataclasses import asdict

        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.proc = context.Process(target=_serve, args=(child, fn, asdict(LIMITS), threads, warm), daemon=True)
        self.proc.start()
        child.close()
        self.ready = False  # the worker has imported and warmed up: a case's clock starts only then
        self.job: tuple[int, Any] | None = None  # (index, case) in progress
        self.started = 0.0

    def submit(self, index: int, item: Any, kwargs: dict[str, Any]) -> None:
        import time

        self.job = (index, item)
        self.started = time.monotonic()
        self.conn.send((item, kwargs))

    def death(self) -> str:
        """How the process ended (it has, or is about to): the signal that killed it or its exit code."""
        self.proc.join(1)
        code = self.proc.exitcode
        return f"killed by signal {_signal_name(-code)}" if code is not None and code < 0 else f"exited with code {code}"

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


READY = "ready"


def _serve(conn: Any, fn: Callable[..., Any], limits: dict[str, int], threads: int,
           warm: Callable[[], None] | None) -> None:
    """The worker's loop: warm up, say so, then verify what arrives and send back the result; exit when the pipe
    closes."""
    worker_init(limits, threads)
    if warm is not None:
        warm()
    conn.send(READY)
    while True:
        try:
            item, kwargs = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(fn(item, **kwargs))


def run_isolated(fn: Callable[..., R], items: list[T], jobs: int, limit: Callable[[T], float | None],
                 died: Callable[[T, str], R], stuck: Callable[[T, float], R],
                 warm: Callable[[], None] | None = None, **kwargs: Any) -> Iterator[tuple[int, R]]:
    """(index, fn(item, **kwargs)) for each item, each run in a worker process of its own kind: a worker that dies
    (a segfault, os._exit, the OOM killer) makes that item's result died(item, how) and is replaced; one that runs
    past limit(item) + GRACE seconds (stuck inside one C call, where the in-process alarm cannot land) is killed,
    the result is stuck(item, limit), and a fresh worker takes the next item. The other items are unaffected.
    An interrupt kills every worker."""
    import time
    from multiprocessing.connection import wait

    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    pending = list(enumerate(items))[::-1]
    workers = [_Worker(fn, threads, warm) for _ in range(min(jobs, len(items)))]
    failed_starts = 0
    try:
        while pending or any(w.job is not None for w in workers):
            busy = [w for w in workers if w.job is not None]
            deadlines = [w.started + lim + GRACE for w in busy
                         if (lim := limit(w.job[1])) is not None]  # type: ignore[index]  # busy: job is set
            timeout = max(0.05, min(deadlines) - time.monotonic()) if deadlines else None
            ready = wait([w.conn for w in workers] + [w.proc.sentinel for w in workers], timeout)
            for k, w in enumerate(workers):
                message: Any = None
                received = False
                if w.conn in ready:
                    try:
                        message, received = w.conn.recv(), True
                    except (EOFError, OSError):
                        pass
                if received and not w.ready and message == READY:
                    w.ready = True
                    if pending:
                        w.submit(*pending.pop(), kwargs)
                    continue
                if not received and (w.proc.sentinel in ready or not w.proc.is_alive()):
                    how = w.death()
                    job = w.job
                    w.stop()
                    if job is None:  # died while starting up: nothing of an item's to report
                        failed_starts += 1
                        if failed_starts > 3:
                            raise RuntimeError(f"the worker processes cannot start ({how})")
                    workers[k] = _Worker(fn, threads, warm)
                    if job is not None:
                        yield job[0], died(job[1], how)
                    continue
                if w.job is None:
                    continue
                index, item = w.job
                lim = limit(item)
                if received:
                    w.job = None
                    yield index, message
                elif lim is not None and time.monotonic() - w.started > lim + GRACE:
                    w.stop()
                    workers[k] = _Worker(fn, threads, warm)
                    yield index, stuck(item, lim)
                    continue
                else:
                    continue
                if pending:
                    w.submit(*pending.pop(), kwargs)
    finally:
        for w in workers:
            w.stop()


_RESIDENT: dict[int, _Worker] = {}  # per thread: the case process a long-lived host process (a dask worker) keeps


def run_resident(fn: Callable[..., R], item: T, limit: Callable[[T], float | None], died: Callable[[T, str], R],
                 stuck: Callable[[T, float], R], warm: Callable[[], None] | None = None, **kwargs: Any) -> R:
    """fn(item, **kwargs) in this thread's resident worker process, with run_isolated's guarantees for one item: a
    worker that dies is died(item, how), one past limit(item) + GRACE is killed and stuck(item, limit); either way
    the next call starts a fresh worker. The worker stays for the next item (a dask task pays no start-up)."""
    import threading
    import time
    from multiprocessing.connection import wait

    key = threading.get_ident()
    w = _RESIDENT.get(key)
    if w is None or not w.proc.is_alive():
        w = _RESIDENT[key] = _Worker(fn, max(1, (os.cpu_count() or 1)), warm)

    def retire() -> None:  # the next call starts a fresh worker
        w.stop()
        del _RESIDENT[key]

    while not w.ready:
        ready = wait([w.conn, w.proc.sentinel], 600)
        if w.conn in ready:
            try:
                w.ready = w.conn.recv() == READY
                continue
            except (EOFError, OSError):
                pass
        retire()
        raise RuntimeError("the resident worker process could not start")
    w.submit(0, item, kwargs)
    lim = limit(item)
    deadline = None if lim is None else w.started + lim + GRACE
    while True:
        timeout = None if deadline is None else max(0.05, deadline - time.monotonic())
        ready = wait([w.conn, w.proc.sentinel], timeout)
        if w.conn in ready:
            try:
                message = w.conn.recv()
                w.job = None
                return message  # what fn returned, through the pipe
            except (EOFError, OSError):
                pass
        if w.proc.sentinel in ready or not w.proc.is_alive():
            how = w.death()
            retire()
            return died(item, how)
        if deadline is not None and lim is not None and time.monotonic() > deadline:
            retire()
            return stuck(item, lim)


def _signal_name(number: int) -> str:
    import signal

    try:
        return f"{signal.Signals(number).name} ({number})"
    except ValueError:
        return str(number)
