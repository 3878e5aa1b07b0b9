"""Every word, table, JSON field and picture. The faces use these names (the door of the report stage); the
pictures (plots) and the generated documents (conventions, sweep_tables) are imported where they are drawn."""

from __future__ import annotations

from ..results import UNSUPPORTED
from .files import write_json, write_text
from .json_report import case_json, run_json
from .tables import check_table, table
from .text import case_text, diagnosis_text, error_text, fmt, header, notes, summary, unsupported_text

__all__ = ["case_json", "case_text", "check_table", "diagnosis_text", "error_text", "fmt", "header", "notes",
           "run_json", "summary", "table", "unsupported_text", "UNSUPPORTED", "write_json", "write_text"]
