"""The derivation cache: sympy's work (expanded expressions, derivatives, closed forms) kept on disk between runs.

An entry is keyed by everything the derivation depends on: the case's structure (input names, shapes and
requires_grad, the defines, the function), the quantity asked for, the sympy meaning of every op the case uses, the
versions of sympy and of gradverify, and a hash of gradverify's deriving modules. A change to any of them is a
different key, never a stale entry.

Entries are pickles written by gradverify only (atomically: a temporary file, then ``os.replace``), into the user's
own cache directory, which is trusted like any other per-user cache. A corrupt or unreadable entry is a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Callable, TypeVar

from ..version import __version__

FORMAT = 1
T = TypeVar("T")


class _State:
    enabled = os.environ.get("GRADVERIFY_NO_CACHE", "") in ("", "0")
    hits = 0
    misses = 0
    stores = 0


def _limit_bytes() -> int:
    try:
        return int(float(os.environ.get("GRADVERIFY_CACHE_MB", "256")) * 2**20)
    except ValueError:
        return 256 * 2**20


MAX_BYTES = _limit_bytes()  # the cache's size bound ($GRADVERIFY_CACHE_MB, default 256 MB): least recently used go
PRUNE_EVERY = 64  # stores between two checks of the bound (a check stats every entry)


STATE = _State()


def cache_dir() -> Path:
    """$GRADVERIFY_CACHE_DIR, else $XDG_CACHE_HOME/gradverify, else ~/.cache/gradverify."""
    if os.environ.get("GRADVERIFY_CACHE_DIR"):
        return Path(os.environ["GRADVERIFY_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gradverify"


def set_enabled(enabled: bool) -> None:
    STATE.enabled = enabled
    os.environ["GRADVERIFY_NO_CACHE"] = "" if enabled else "1"  # spawned -j workers read it


def case_key(case: Any) -> list[Any]:
    """What a case's derivations depend on (not its values: the expressions are symbolic)."""
    from ..language.nodes import Call, unparse
    from ..language.ops import OPS

    used = sorted({n.func for n in case.nodes() if isinstance(n, Call)})
    return [
        [[i.name, list(i.shape), i.requires_grad] for i in case.inputs],
        [[d.name, unparse(d.node)] for d in case.defines],
        unparse(case.function),
        [[name, _meaning(OPS[name].sympy)] for name in used if name in OPS],
    ]


def _meaning(fn: Callable[..., Any]) -> str:
    """A fingerprint of an op's sympy meaning, so a re-registered op never reuses another meaning's entries."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"
    parts = [_code(code)]
    for cell in getattr(fn, "__closure__", None) or ():
        inner = cell.cell_contents
        parts.append(_meaning(inner) if callable(inner) else repr(inner))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _code(code: Any) -> str:
    """Bytecode, names and constants (nested code objects by content: their repr holds a memory address)."""
    consts = [_code(c) if hasattr(c, "co_code") else repr(c) for c in code.co_consts]
    return "|".join([code.co_code.hex(), repr(code.co_names), *consts])


# every source file whose code decides what a derivation returns, relative to the package (a test checks each exists)
DERIVING = ("language/nodes.py", "language/parse.py", "language/analysis.py", "language/shapes.py", "language/ops.py",
            "language/meanings.py", "language/spellings.py", "language/more_ops.py", "reference/cache.py",
            "reference/symfuncs.py", "reference/symbols.py", "reference/expanded/reference.py",
            "reference/vectorised/plan.py", "reference/vectorised/reference.py", "reference/vectorised/quantity.py",
            "reference/vectorised/arrays.py", "reference/matrix.py")
_CODE: list[str] = []


def code_fingerprint() -> str:
    """A hash of the modules that derive: a changed derivation never reuses entries of the old code, even within
    one version number."""
    if not _CODE:
        package = Path(__file__).resolve().parent.parent
        digest = hashlib.sha256()
        for name in DERIVING:  # a missing file is an error: skipping it would weaken the key and serve stale entries
            digest.update(name.encode() + b"\0" + (package / name).read_bytes())
        _CODE.append(digest.hexdigest()[:16])
    return _CODE[0]


def key(kind: str, parts: Any) -> str:
    import sympy

    text = json.dumps([FORMAT, __version__, code_fingerprint(), sympy.__version__, kind, parts], sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def memo(kind: str, parts: Any, compute: Callable[[], T]) -> T:
    """The cached result of ``compute()`` for this kind and key parts (computed and stored on a miss)."""
    if not STATE.enabled:
        return compute()
    digest = key(kind, parts)
    if digest in _RECENT:  # already loaded in this process: no unpickling (sympy rebuilds every node on load)
        STATE.hits += 1
        return _RECENT[digest]
    path = cache_dir() / digest[:2] / f"{digest}.pkl"
    try:
        with open(path, "rb") as fh:
            value = pickle.load(fh)
        STATE.hits += 1
        _remember(digest, value)
        try:
            os.utime(path)  # used now: the least recently used entries are the ones the size bound removes
        except OSError:
            pass
        return value
    except FileNotFoundError:
        pass
    except Exception:  # noqa: BLE001 - a corrupt or foreign entry is a miss; it is overwritten below
        pass
    STATE.misses += 1
    value = compute()
    _store(path, value)
    _remember(digest, value)
    return value


_RECENT: dict[str, Any] = {}
RECENT_ENTRIES = 256  # derivations kept in memory per process (read-only once built)


def _remember(digest: str, value: Any) -> None:
    if len(_RECENT) >= RECENT_ENTRIES:
        _RECENT.pop(next(iter(_RECENT)))
    _RECENT[digest] = value


def _store(path: Path, value: Any) -> None:
    try:
        blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
        return  # not picklable (e.g. a user's op built from a lambda in a sympy object): simply not cached
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pkl")
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        os.replace(tmp, path)
    except OSError:
        return  # a read-only or full disk costs speed, never a verdict
    STATE.stores += 1
    if STATE.stores % PRUNE_EVERY == 0:
        prune()


def prune(limit: int | None = None) -> tuple[int, int]:
    """Remove the least recently used entries until the cache holds at most 90% of its bound (when it is over
    it); returns (files, bytes) removed. Safe beside other runs: an entry removed under a reader is a miss."""
    limit = MAX_BYTES if limit is None else limit
    found = []
    for p in entries():
        try:
            st = p.stat()
        except OSError:
            continue
        found.append((st.st_mtime, st.st_size, p))
    total = sum(size for _, size, _ in found)
    if total <= limit:
        return 0, 0
    removed = freed = 0
    for _, size, p in sorted(found, key=lambda f: f[0]):
        if total - freed <= 0.9 * limit:
            break
        try:
            p.unlink()
        except OSError:
            continue
        removed, freed = removed + 1, freed + size
    return removed, freed


def entries() -> list[Path]:
    root = cache_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("[0-9a-f][0-9a-f]/*.pkl") if p.is_file())


def clear() -> tuple[int, int]:
    """Delete every entry (only gradverify's own files); returns (files, bytes) removed."""
    _RECENT.clear()
    count = size = 0
    for p in entries() + sorted(cache_dir().glob("[0-9a-f][0-9a-f]/.tmp-*.pkl")):
        try:
            size += p.stat().st_size
            p.unlink()
            count += 1
        except OSError:
            continue
    for d in cache_dir().glob("[0-9a-f][0-9a-f]"):
        try:
            d.rmdir()
        except OSError:
            pass
    return count, size
