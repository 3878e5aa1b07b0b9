"""Report files, written atomically: a reader never sees half a report."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    """Write atomically: a temporary file in the same directory, then rename over the target; "-" is stdout."""
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    if str(path) == "-":
        import sys

        sys.stdout.write(text)
        sys.stdout.flush()
        return
    write_text(path, text)


def write_text(path: str | Path, text: str) -> None:
    """Write atomically: a temporary file in the same directory, then rename over the target."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # a report is an ordinary file (mkstemp makes it private)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
