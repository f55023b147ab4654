"""Prints the reliability report (test-artifacts/reliability-report.jsonl) as one table:
scenario, accepted, completed, failed, lost, duplicated, recovery, and the scenario's
own figures. Usage: python scripts/reliability_table.py [report]"""
import json
import sys
from pathlib import Path

COLUMNS = ("accepted", "completed", "failed", "lost", "duplicated", "recovery_seconds")


def main(path: str = "test-artifacts/reliability-report.jsonl") -> None:
    report = Path(path)
    if not report.exists():
        print(f"no reliability report at {report}")
        return
    rows = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    width = max([len(r["scenario"]) for r in rows] + [8])
    print(f"{'scenario':<{width}} | " + " | ".join(c.replace("_seconds", " s") for c in COLUMNS)
          + " | figures")
    for r in rows:
        cells = " | ".join(f"{r.get(c, ''):>{len(c.replace('_seconds', ' s'))}}" for c in COLUMNS)
        figures = ", ".join(f"{k} {v}" for k, v in (r.get("figures") or {}).items())
        print(f"{r['scenario']:<{width}} | {cells} | {figures}")


if __name__ == "__main__":
    main(*sys.argv[1:])
