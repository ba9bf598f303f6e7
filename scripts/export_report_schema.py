"""Write docs/neuron-monitor-schema.json, the JSON Schema of a neuron-monitor report.

The schema is generated from the pydantic models in neurontools/monitor/report.py; run this after
changing them. `python scripts/export_report_schema.py --check` exits 1 if the committed file is stale.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a plain script from a checkout, installed or not

from neurontools.monitor.report import Report  # noqa: E402

DEFAULT_OUTPUT = ROOT / "docs" / "neuron-monitor-schema.json"


def render() -> str:
    # pydantic emits a deterministic order (sorted keywords and $defs, properties in field order).
    return json.dumps(Report.model_json_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is missing or stale")
    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT, help="schema file to write or check")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not args.output.exists() or args.output.read_text() != text:
            print(f"{args.output} is stale: run python scripts/export_report_schema.py", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
