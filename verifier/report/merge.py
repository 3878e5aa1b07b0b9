"""`gradverify merge`: the JSON reports of a run's shards (`--shard K/N`) joined into the report of the whole run."""

from __future__ import annotations

from typing import Any

from ..results import INVALID, OK
from .json_report import SCHEMA_VERSION
from .text import counts_text


def merge_reports(docs: list[dict[str, Any]], names: list[str]) -> tuple[dict[str, Any], list[str]]:
    """One report: every case once (in shard order), the errors, the summary and exit code recomputed as run_json
    computes them; shards of another gradverify, torch or seed, a case in two shards, or another schema are
    refused. Also the lines that say what was merged."""
    if not docs:
        raise ValueError("nothing to merge")
    for doc, name in zip(docs, names):
        if doc.get("schema_version") != SCHEMA_VERSION or not isinstance(doc.get("cases"), list):
            raise ValueError(f"{name}: not a gradverify run report of schema {SCHEMA_VERSION} "
                             f"(schema_version {doc.get('schema_version')!r})")
    first = docs[0]
    for doc, name in zip(docs[1:], names[1:]):
        for key in ("gradverify", "seed"):
            if doc.get(key) != first.get(key):
                raise ValueError(f"{name}: {key} {doc.get(key)!r} differs from {names[0]}'s {first.get(key)!r}")
        if doc.get("versions", {}).get("torch") != first.get("versions", {}).get("torch"):
            raise ValueError(f"{name}: another torch ({doc.get('versions', {}).get('torch')}) than {names[0]}'s")
    seen: dict[str, str] = {}
    cases: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for doc, name in zip(docs, names):
        for case in doc["cases"]:
            if case["case"] in seen:
                raise ValueError(f"case {case['case']!r} is in {seen[case['case']]} and in {name}: shards of one run "
                                 "share no case")
            seen[case["case"]] = name
            cases.append(case)
        errors.extend(e for e in doc.get("errors", []) if e not in errors)  # every shard reports the files' errors
    counts: dict[str, int] = {}
    for case in cases:
        counts[case["verdict"]] = counts.get(case["verdict"], 0) + 1
    if errors:
        counts[INVALID] = counts.get(INVALID, 0) + len(errors)
    complete = all(doc.get("complete", True) for doc in docs)
    shards = sorted(tuple(d["shard"]) for d in docs if d.get("shard"))
    exit_code = (130 if not complete else 2 if errors or counts.get(INVALID) else
                 1 if any(c["verdict"] not in OK for c in cases) else 0)
    merged = {**first, "seconds": round(max(d.get("seconds", 0.0) for d in docs), 3), "complete": complete,
              "exit_code": exit_code, "summary": counts, "shard": None, "merged_from": list(names),
              "shards": [list(s) for s in shards], "cases": cases, "errors": errors,
              "scheduler": None}
    missing = []
    if shards and len({s[1] for s in shards}) == 1:
        n = shards[0][1]
        missing = [k for k in range(1, n + 1) if (k, n) not in shards]
    lines = [f"merged {len(docs)} report(s): {len(cases)} cases; {counts_text(counts) or 'no cases'}"]
    if missing:
        lines.append(f"missing shard(s) {', '.join(f'{k}/{shards[0][1]}' for k in missing)}: the merged run is "
                     "incomplete")
        merged["complete"] = False
        merged["exit_code"] = 130
    return merged, lines
