"""Cases on a real dask.distributed cluster (a scheduler and two workers on loopback, started as a user would), CI
shards and their merge (issue 20). The verdicts are a serial run's; a worker that dies or a case that crashes is
that case's verdict, never the run's."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from verifier.cli import main
from verifier.cluster import in_shard, parse_shard
from verifier.runner import run

from .conftest import CASES

pytest.importorskip("distributed")

SEED = CASES / "seed"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


@pytest.fixture
def cluster():
    """`dask scheduler --host 127.0.0.1` and two `dask worker`s (non-daemonic: each keeps a case process)."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs = [subprocess.Popen([_bin("dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    time.sleep(2)
    for _ in range(2):
        procs.append(subprocess.Popen([_bin("dask"), "worker", address, "--nthreads", "1", "--no-dashboard",
                                       "--no-nanny"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
    from distributed import Client

    with Client(address, timeout="60s") as c:
        c.wait_for_workers(2, timeout=60)
    yield address, procs[1:]
    for p in procs[::-1]:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL) if p in procs[1:] else p.kill()
        p.wait(10)


def _verdicts(result):
    return {r.name: r.status for r in result.cases}


def test_the_seed_suite_on_a_cluster_has_the_serial_verdicts(cluster):
    address, _ = cluster
    serial = run([SEED])
    remote = run([SEED], scheduler=address)
    assert _verdicts(remote) == _verdicts(serial) and remote.exit_code == serial.exit_code == 0
    assert [r.name for r in remote.cases] == [r.name for r in serial.cases]  # in case order
    assert all(r.ran_on.startswith("tcp://127.0.0.1:") for r in remote.cases)
    assert len({r.ran_on for r in remote.cases}) == 2  # both workers took cases
    checks = lambda res: {(r.name, c.check, c.point, len(c.comparisons)) for r in res.cases for c in r.checks}  # noqa: E731
    assert checks(remote) == checks(serial)


SLOW = '''
import time
import torch


def slow_square(x):
    time.sleep(0.2)
    return x ** 2


def crash(x):
    import os
    os._exit(3)


def stuck(x):
    time.sleep(60)
    return x
'''


def _slow_cases(tmp_path: Path, n: int, extra: str = "") -> Path:
    (tmp_path / "slowcode.py").write_text(SLOW)
    text = "".join(f"- {{name: slow{k}, inputs: {{x: {k + 1}.0}}, function: x**2, impl: 'slowcode:slow_square', "
                   f"checks: [value, backward]}}\n" for k in range(n))
    (tmp_path / "slow.yaml").write_text(text + extra)
    return tmp_path / "slow.yaml"


def test_a_worker_killed_mid_run_loses_no_case(cluster, tmp_path):
    """The scheduler gives the killed worker's case to the other one: every case has its verdict."""
    address, workers = cluster
    path = _slow_cases(tmp_path, 6)
    killed = []

    def progress(result, done, total):
        if not killed:
            os.killpg(workers[0].pid, signal.SIGKILL)
            killed.append(done)

    result = run([path], scheduler=address, progress=progress)
    assert killed and len(result.cases) == 6
    assert all(r.status in ("pass", "error") for r in result.cases), _verdicts(result)
    assert sum(r.status == "pass" for r in result.cases) >= 5  # at most the case in flight is lost, and named
    assert workers[0].poll() is not None


def test_a_crashing_case_and_a_stuck_one_are_their_own_verdicts_on_a_worker(cluster, tmp_path):
    address, _ = cluster
    path = _slow_cases(tmp_path, 0, "- {name: slow0, inputs: {x: 1.0}, function: sin(x)}\n"
                                    "- {name: crashes, inputs: {x: 1.0}, function: x, impl: 'slowcode:crash'}\n"
                                    "- {name: hangs, inputs: {x: 1.0}, function: x, impl: 'slowcode:stuck'}\n"
                                    "- {name: slow1, inputs: {x: 2.0}, function: x**3}\n")
    result = run([path], scheduler=address, timeout=3)
    verdicts = _verdicts(result)
    assert verdicts == {"slow0": "pass", "slow1": "pass", "crashes": "error", "hangs": "timeout"}, verdicts
    crashed = next(r for r in result.cases if r.name == "crashes")
    assert "exited with code 3" in crashed.crashed


def test_shards_split_deterministically_and_merge_to_the_whole_run(tmp_path, capsys):
    names = [f"case{k}" for k in range(200)]
    shares = [[n for n in names if in_shard(n, (k, 3))] for k in (1, 2, 3)]
    assert sorted(sum(shares, [])) == sorted(names) and all(40 < len(s) < 95 for s in shares)
    assert parse_shard("2/3") == (2, 3)
    with pytest.raises(ValueError):
        parse_shard("4/3")
    reports = []
    for k in (1, 2):
        out = tmp_path / f"s{k}.json"
        main(["run", str(SEED), "--shard", f"{k}/2", "--json", str(out), "--no-progress"])
        reports.append(str(out))
    whole = tmp_path / "whole.json"
    main(["run", str(SEED), "--json", str(whole), "--no-progress"])
    merged = tmp_path / "all.json"
    capsys.readouterr()
    assert main(["merge", *reports, "--json", str(merged)]) == 0
    assert "merged 2 report(s): 19 cases; 17 passed, 2 xfail" in capsys.readouterr().out
    got, want = json.loads(merged.read_text()), json.loads(whole.read_text())
    assert {c["case"]: c["verdict"] for c in got["cases"]} == {c["case"]: c["verdict"] for c in want["cases"]}
    assert got["summary"] == want["summary"] and got["exit_code"] == want["exit_code"] == 0
    assert main(["merge", reports[0], reports[0], "--json", str(merged)]) == 2  # a case in two shards
    assert main(["merge", reports[0], "--json", str(merged)]) == 130  # shard 2/2 missing: incomplete
    assert json.loads(merged.read_text())["complete"] is False
