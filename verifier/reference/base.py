"""What every exact reference offers: the interface the checks use (typing.Protocol), and the exception a reference
raises for a quantity it does not cover."""

from __future__ import annotations


class NotVectorisable(Exception):
    """The case uses something the vectorised reference does not cover; the reason says what."""
