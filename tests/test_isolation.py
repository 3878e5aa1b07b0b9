"""A case that kills its process, or is stuck inside one C call, is that case's verdict; the run goes on and its
report is written (each case of a run with user code runs in a worker process)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from .conftest import ROOT

USER_CODE = '''
import ctypes, os, torch

def exits(x):
    os._exit(3)

def segfaults(x):
    ctypes.string_at(0)

def stuck(x):
    torch.linalg.eigvals(torch.randn(3000, 3000, dtype=torch.float64))  # one long C call: no alarm lands inside
    return x * 2

def fine(x):
    return torch.sin(x)
'''


def _run(tmp_path, cases: str, *args: str) -> tuple[subprocess.CompletedProcess, dict, float]:
    (tmp_path / "usercode.py").write_text(USER_CODE)
    (tmp_path / "cases.yaml").write_text(cases)
    report = tmp_path / "r.json"
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "verifier", "run", str(tmp_path), "--json", str(report), *args],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    return out, json.loads(report.read_text()), time.perf_counter() - start


def test_a_case_that_kills_its_process_is_its_own_verdict(tmp_path):
    out, data, _ = _run(tmp_path, "- name: exits\n  inputs: {x: [0.5]}\n  function: sin(x)\n  impl: usercode:exits\n"
                                  "- name: segfaults\n  inputs: {x: [0.5]}\n  function: sin(x)\n  impl: usercode:segfaults\n"
                                  "- name: fine\n  inputs: {x: [0.5]}\n  function: sin(x)\n  impl: usercode:fine\n")
    verdicts = {c["case"]: c["verdict"] for c in data["cases"]}
    assert verdicts == {"exits": "error", "segfaults": "error", "fine": "pass"}, out.stdout[-2000:]
    errors = {c["case"]: c["error"] for c in data["cases"]}
    assert "exited with code 3" in errors["exits"] and "SIGSEGV" in errors["segfaults"]
    assert out.returncode == 1 and data["exit_code"] == 1


def test_a_case_stuck_in_one_c_call_is_stopped_at_its_limit(tmp_path):
    out, data, seconds = _run(tmp_path, "- name: stuck\n  inputs: {x: [0.5]}\n  function: 2*x\n  impl: usercode:stuck\n"
                                        "- name: fine\n  inputs: {x: [0.5]}\n  function: sin(x)\n  impl: usercode:fine\n",
                              "--timeout", "1")
    verdicts = {c["case"]: c["verdict"] for c in data["cases"]}
    assert verdicts == {"stuck": "timeout", "fine": "pass"}, out.stdout[-2000:]
    assert out.returncode == 1
    assert seconds < 60  # the eigvals alone takes longer than the limit: the worker was killed
