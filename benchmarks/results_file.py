"""The JSON results file every benchmark writes: its figures, headed by what they mean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_results(
    path: Path, description: str, fields: dict[str, str], results: dict[str, Any]
) -> None:
    """Write `results` as JSON to `path`, after a one-line description and one line per field.

    Raises:
        ValueError: `fields` does not describe exactly the keys of `results`.
    """
    if set(fields) != set(results):
        undescribed, absent = sorted(set(results) - set(fields)), sorted(set(fields) - set(results))
        raise ValueError(f"fields and results differ: undescribed {undescribed}, absent {absent}")
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"description": description, "fields": fields, **results}
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path}")
