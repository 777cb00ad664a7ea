"""Evaluate every shipped scenario and print one table (for ``docs/evaluation.md``).

Run from the repository root::

    .venv/bin/python benchmarks/evaluate_library.py [--json OUT] [NAME ...]

Each scenario runs in-process (``estate evaluate``: simulator → ingest pipeline →
detector engine) with the shipped rules. Per scenario the table lists every detector
that has labels or raised alerts; the last block sums them over the library and
checks the floors of issue 5 (recall ≥ 0.95, precision ≥ 0.9) for detectors that exist.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

from processors.detectors import ALL_DETECTORS  # noqa: E402
from processors.rules import load_rules  # noqa: E402
from processors.scoring import ADVISORY, score_table  # noqa: E402
from simulators.evaluate import evaluate  # noqa: E402
from simulators.scenario import load_scenario, scenario_names  # noqa: E402

RECALL_FLOOR, PRECISION_FLOOR = 0.95, 0.9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="scenarios (default: all shipped)")
    parser.add_argument("--json", type=Path, help="write every result as JSON here")
    args = parser.parse_args(argv)
    rules = load_rules()
    existing = {d.name for d in ALL_DETECTORS}
    totals: dict[str, list[int]] = {}  # detector -> labels, detected, alerts, true alerts
    results = []
    for name in args.names or scenario_names():
        began = time.monotonic()
        result = evaluate(load_scenario(name), rules)
        results.append(result.to_json())
        shown = [s for s in result.scores if s.labels or s.alerts]
        print(f"\n## {name} ({result.readings:,} readings, {time.monotonic() - began:.0f} s)")
        print(score_table(shown))
        for s in result.scores:
            t = totals.setdefault(s.detector, [0, 0, 0, 0])
            for i, v in enumerate((s.labels, s.detected, s.alerts, s.true_alerts)):
                t[i] += v
    print("\n## library (detectors that exist)")
    failing = []
    for name, (labels, detected, alerts, true_alerts) in sorted(totals.items()):
        if name not in existing or not (labels or alerts):
            continue
        recall = detected / labels if labels else None
        precision = true_alerts / alerts if alerts else None
        ok = (recall is None or recall >= RECALL_FLOOR) and (
            precision is None or precision >= PRECISION_FLOOR or name in ADVISORY
        )
        failing += [] if ok else [name]
        shown_r = "-" if recall is None else f"{recall:.2f}"
        shown_p = "-" if precision is None else f"{precision:.2f}"
        print(
            f"{name:26} labels {labels:3} found {detected:3} recall {shown_r:>5}  "
            f"alerts {alerts:3} precision {shown_p:>5}  {'ok' if ok else 'BELOW FLOOR'}"
            + ("  (advisory: precision not held to the floor)" if name in ADVISORY else "")
        )
    missing = sorted({n for n in totals if n not in existing})
    if missing:
        print(f"labels for detectors not yet written: {', '.join(missing)}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    return 1 if failing else 0


if __name__ == "__main__":
    raise SystemExit(main())
