"""The caller's process is left as it was: its interval timer and alarm handler, torch's global flags, the RNG."""

from __future__ import annotations

import signal
import time
import warnings

import pytest
import torch

from verifier import assert_gradients_match

X = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)

posix_only = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="interval timers are POSIX")


@posix_only
def test_the_callers_timer_keeps_running():
    fired = []
    old = signal.signal(signal.SIGALRM, lambda s, f: fired.append(time.monotonic()))
    try:
        signal.setitimer(signal.ITIMER_REAL, 30.0)
        assert_gradients_match(torch.sin, "sin(x)", {"x": X})
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 20.0 < remaining < 30.0  # still armed, counting down (was cancelled: 0)
        assert signal.getsignal(signal.SIGALRM) is not signal.SIG_DFL and not fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@posix_only
def test_the_callers_alarm_due_during_a_check_is_delivered():
    fired = []
    old = signal.signal(signal.SIGALRM, lambda s, f: fired.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        assert_gradients_match(torch.sin, "sin(x)", {"x": X}, order=2)
        time.sleep(0.2)  # due inside the helper or just after it: delivered once, to the caller's handler
        assert fired == [1]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_torch_global_state_is_left_as_it_was():
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    flags = (torch.get_default_dtype(), torch.is_grad_enabled(), torch.is_anomaly_enabled(),
             torch.are_deterministic_algorithms_enabled())
    filters = list(warnings.filters)
    assert_gradients_match(torch.sin, "sin(x)", {"x": X}, order=2)
    assert torch.equal(torch.get_rng_state(), state)
    assert (torch.get_default_dtype(), torch.is_grad_enabled(), torch.is_anomaly_enabled(),
            torch.are_deterministic_algorithms_enabled()) == flags
    assert list(warnings.filters) == filters


def test_importing_and_running_leave_the_warning_filters_alone():
    import subprocess
    import sys

    from .conftest import ROOT

    # the libraries' own import-time filters (scipy.special, sympy) are theirs: load them first
    code = ("import warnings, torch, scipy.special, sympy, mpmath, numpy; before = list(warnings.filters); "
            "from verifier import assert_gradients_match; import verifier.torchside.autodiff; "
            "assert_gradients_match(torch.sin, 'sin(x)', {'x': torch.tensor([0.5, 1.0], dtype=torch.float64)}); "
            "print(list(warnings.filters) == before)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "True"


def test_off_the_main_thread_the_helper_says_it_cannot_enforce_a_limit():
    import threading

    from verifier.report.text import notes

    results = []
    thread = threading.Thread(target=lambda: results.append(assert_gradients_match(torch.sin, "sin(x)", {"x": X})))
    thread.start()
    thread.join(60)
    (result,) = results
    assert not result.limit_enforced
    assert any("time limit could not be enforced here" in line for line in notes(result))
    assert assert_gradients_match(torch.sin, "sin(x)", {"x": X}).limit_enforced  # the main thread: enforced


def test_torch_compile_config_is_left_as_it_was():
    import torch._dynamo.config as dynamo_config

    before = dynamo_config.get_config_copy()
    assert_gradients_match(torch.sin, "sin(x)", {"x": X}, order=2)
    assert dynamo_config.get_config_copy() == before
