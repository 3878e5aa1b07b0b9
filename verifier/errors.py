"""The exception hierarchy: one base, case errors that are ValueErrors, mismatches that are AssertionErrors."""

from __future__ import annotations


class VerifierError(Exception):
    """Base class of every error gradverify raises on purpose."""


class CaseError(VerifierError, ValueError):
    """A case file or expression is malformed; the message names file, line, case and key."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        case: str | None = None,
        key: str | None = None,
    ) -> None:
        self.reason = message
        self.file = file
        self.line = line
        self.case = case
        self.key = key
        super().__init__(self._render())

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle with every field (results cross process boundaries in parallel runs)."""
        return (_rebuild, (type(self), self.reason, self.file, self.line, self.case, self.key))

    def located(
        self,
        *,
        file: str | None = None,
        line: int | None = None,
        case: str | None = None,
        key: str | None = None,
    ) -> CaseError:
        """Return a copy with missing location fields filled in (inner fields win)."""
        return type(self)(
            self.reason,
            file=self.file or file,
            line=self.line or line,
            case=self.case or case,
            key=self.key if self.key else key,
        )

    def _render(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "")
        parts = [p for p in (where, f"case {self.case!r}" if self.case else "", f"key {self.key!r}" if self.key else "") if p]
        return (", ".join(parts) + ": " if parts else "") + self.reason


class Untraceable(CaseError):
    """A forward traced for its exact reference does something the trace cannot state as mathematics (an op outside
    the table, random numbers, values taken out of torch); the message names the op and where the user's code
    called it."""


def _rebuild(cls: type[CaseError], reason: str, file: str | None, line: int | None, case: str | None,
             key: str | None) -> CaseError:
    return cls(reason, file=file, line=line, case=case, key=key)


class DeviceUnavailable(CaseError):
    """The case asks for a device (e.g. cuda) this machine does not have."""


class LimitError(CaseError):
    """A configured limit (size, depth, order, time) was exceeded."""


class GradientMismatch(VerifierError, AssertionError):
    """Autograd disagrees with the exact derivative; the message is the comparator's report."""

    def __init__(self, report: str, result: object = None) -> None:
        self.result = result
        super().__init__(report)


class FindingWarning(UserWarning):
    """A finding of a conformance case (torch's own gradient wrong or inaccurate), as the pytest plugin reports it:
    warned at the case's YAML line, not failed, unless --verifier-strict. `-W error::verifier.FindingWarning`
    makes each one a failure that shows gradverify's report."""
