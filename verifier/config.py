"""Run options, settled once: what the command line, the pytest plugin or the helper asked for, frozen, and each
case's own values resolved against it in one place. No other module resolves ``dtype or case.dtype``; a Case is
never rewritten to carry a run's options."""

from __future__ import annotations

from dataclasses import dataclass

from .case.model import Case

DEFAULT_TIMEOUT = 120.0  # seconds per case


@dataclass(frozen=True)
class RunConfig:
    """The options of a run (None: each case's own value).

    dtype: override every case's dtype. seed: override the seed of random grad_outputs and tangents. strict: fail at
    kinks. timeout: seconds per case (None: no limit). device: where the torch side runs. compile: also verify
    torch.compile with this backend. checks: run only these checks.
    """

    dtype: str | None = None
    seed: int | None = None
    strict: bool | None = None
    timeout: float | None = DEFAULT_TIMEOUT
    device: str | None = None
    compile: str | None = None
    checks: tuple[str, ...] | None = None

    def settle(self, case: Case) -> Settled:
        """This run's options for one case: every choice made, once."""
        compile_ = self.compile or case.compile
        wanted = [c for c in (self.checks or case.checks) if c in case.checks or self.checks is not None]
        if self.compile and "compile" not in wanted:
            wanted.append("compile")
        return Settled(dtype=self.dtype or case.dtype, seed=case.seed if self.seed is None else self.seed,
                       strict=case.strict if self.strict is None else self.strict, timeout=self.timeout,
                       device=self.device or case.device, device_asked=self.device is not None,
                       compile=compile_, checks=tuple(wanted))


@dataclass(frozen=True)
class Settled:
    """One case's options under a run: the dtype, seed, strictness, time limit, device, compile backend and checks."""

    dtype: str
    seed: int
    strict: bool
    timeout: float | None
    device: str
    device_asked: bool  # the device came from the run (the command line), not the case's own key
    compile: str | None
    checks: tuple[str, ...]
