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
