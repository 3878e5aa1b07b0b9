"""Cases on a dask.distributed cluster (`--scheduler ADDRESS` or `--scheduler local[:N]`), and CI shards.

One task per case (a sweep: per case family, its dtype variants together). Each task runs its case the way
`run_isolated` does on one machine: in a resident worker process of the dask worker, so a case that kills its
process is that case's `crashed` verdict and one stuck past its time limit is killed (SIGALRM cannot reach a dask
worker's task thread). A dask worker that dies mid-case makes the scheduler retry the case elsewhere; past the
scheduler's allowed failures it is `crashed` (KilledWorker), never the run. The derivation cache is each worker
machine's own (GRADVERIFY_CACHE_DIR; workers on one machine, or on a shared filesystem, share it: its entries are
content-addressed and written atomically), so nothing large travels with the tasks.

dask.distributed is an optional extra (`pip install gradverify[distributed]`), imported only here and only when a
scheduler is named.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' (1 <= K <= N): this run's share of the cases."""
    k, sep, n = text.partition("/")
    if not sep or not k.isdigit() or not n.isdigit() or not 1 <= int(k) <= int(n):
        raise ValueError(f"--shard is K/N with 1 <= K <= N, got {text!r}")
    return int(k), int(n)


def in_shard(name: str, shard: tuple[int, int]) -> bool:
    """Deterministic, by the name alone (crc32: the same on every machine and Python, unlike hash())."""
    k, n = shard
    return zlib.crc32(name.encode()) % n == k - 1


@contextmanager
def client(address: str) -> Iterator[Any]:
    """A dask Client of an existing scheduler (tcp://host:8786), or of a LocalCluster of N worker processes
    ('local[:N]', default: one per core), closed afterwards."""
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise RuntimeError("--scheduler needs dask.distributed: pip install gradverify[distributed]") from None
    if address == "local" or address.startswith("local:"):
        n = int(address.partition(":")[2] or (os.cpu_count() or 1))
        # a worker that may start processes of its own (the resident case process), one case at a time each
        with dask.config.set({"distributed.worker.daemon": False}):
            with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                    Client(cluster) as c:
                yield c
        return
    with Client(address, timeout="30s") as c:
        yield c


def map_on_cluster(fn: Callable[..., R], items: list[T], address: str, key: Callable[[T], str],
                   lost: Callable[[T, str], R], **kwargs: Any) -> Iterator[tuple[int, R, str]]:
    """(index, fn(item, **kwargs), worker address) as tasks finish; a task whose workers died is lost(item, why)."""
    import uuid

    from distributed import as_completed

    run = uuid.uuid4().hex[:8]  # two runs on one scheduler never share a task key
    with client(address) as c:
        futures = {c.submit(_located, fn, item, pure=False, key=f"gradverify-{run}-{k}-{key(item)}", **kwargs): k
                   for k, item in enumerate(items)}
        try:
            for future in as_completed(list(futures)):
                k = futures[future]
                try:
                    result, where = future.result()
                except Exception as exc:  # noqa: BLE001 - KilledWorker, a lost connection: this item's verdict
                    yield k, lost(items[k], f"{type(exc).__name__}: {exc}"), "-"
                    continue
                yield k, result, where
        except BaseException:
            c.cancel(list(futures))
            raise


def _located(fn: Callable[..., R], item: T, **kwargs: Any) -> tuple[R, str]:
    """fn(item) on a dask worker, and that worker's address (the report says where each case ran)."""
    from distributed import get_worker

    return fn(item, **kwargs), get_worker().address


def verify_resident(case: Any, config: Any, verify: Callable[..., Any], warm: Callable[[], None],
                    ops: str = "") -> Any:
    """A dask task: verify(case, config) in this worker's resident case process (time limit and crash isolation as
    in run_isolated), or in this thread where the worker is daemonic and may not start processes (the time limit
    then cannot be enforced, and the report says so). ops: the client's GRADVERIFY_OPS, the modules that registered
    the case files' own functions, imported here too."""
    import multiprocessing

    from .case.loading import OPS_ENV, reimport_ops
    from .parallel import run_resident
    from .results import died_result, stuck_result

    if ops and os.environ.get(OPS_ENV) != ops:
        os.environ[OPS_ENV] = ops  # the resident process (spawned with this environment) imports them too
        reimport_ops()

    if multiprocessing.current_process().daemon:
        warm()
        return verify(case, config)

    return run_resident(verify, case, lambda c: config.timeout, lambda c, how: died_result(c, config.settle(c).dtype, how),
                        lambda c, limit: stuck_result(c, config.settle(c).dtype, limit), warm, config=config)


def run_on_cluster(cases: list[Any], scheduler: str, config: Any, out: Any, progress: Callable[..., None] | None,
                   verify: Callable[..., Any], warm: Callable[[], None]) -> None:
    """Each case a task on the dask cluster (verify(case, config) there); the results into out in case order, each
    saying where it ran; an interrupt keeps what finished."""
    from .case.loading import OPS_ENV
    from .results import CaseResult

    def lost(case: Any, why: str) -> Any:
        res = CaseResult(name=case.name, case=case, dtype=config.settle(case).dtype)
        res.crashed = f"its dask worker died or was lost ({why}); the other cases ran on"
        return res

    results: dict[int, Any] = {}
    try:
        for done, (k, res, where) in enumerate(map_on_cluster(
                verify_resident, cases, scheduler, key=lambda c: c.name, lost=lost, config=config,
                verify=verify, warm=warm, ops=os.environ.get(OPS_ENV, "")), start=1):
            res.ran_on = where
            results[k] = res
            if progress:
                progress(res, done, len(cases))
    finally:
        out.cases.extend(results[k] for k in sorted(results))
        out.scheduler = scheduler
