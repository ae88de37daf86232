"""Write an audit's report: ``findings.jsonl``, ``findings.csv``, ``review.csv``, ``summary.txt``, ``audit.html``.

Previews are masked and values appear only as keyed hashes, unless the audit was run with ``unmasked=True``.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

from kicc_analysis.deid.audit import AuditResult


def write_report(result: AuditResult, folder: str | os.PathLike[str]) -> dict[str, Path]:
    """Write the report files into ``folder`` (created); return their paths by kind."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "jsonl": folder / "findings.jsonl",
        "csv": folder / "findings.csv",
        "review": folder / "review.csv",
        "summary": folder / "summary.txt",
        "html": folder / "audit.html",
    }
    with open(paths["jsonl"], "w", encoding="utf-8") as f:
        for record in result.findings.to_dict(orient="records"):
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    result.findings.to_csv(paths["csv"], index=False)
    result.review.to_csv(paths["review"], index=False)
    paths["summary"].write_text(result.summary() + "\n", encoding="utf-8")
    by_rule = (
        result.findings.groupby(["severity", "rule"]).size().rename("findings").reset_index()
        if len(result.findings)
        else result.findings
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>KICC-19 de-identification audit</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px}.high{background:#fdd}</style></head><body>",
        "<h1>De-identification audit</h1>",
        f"<pre>{html.escape(result.summary())}</pre>",
        "<h2>Findings by rule</h2>",
        by_rule.to_html(index=False, escape=True),
        "<h2>Findings (first 2000)</h2>",
        result.findings.head(2000).to_html(index=False, escape=True),
        "<h2>Distinct values per tag</h2>",
        result.review.to_html(index=False, escape=True),
        "</body></html>",
    ]
    paths["html"].write_text("\n".join(parts), encoding="utf-8")
    return paths
