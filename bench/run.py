"""Run every benchmark in bench/ (bench_*.py) one after another and print a combined summary.

    ./run bench [--quick]          (or .venv/bin/python bench/run.py [--quick])

Each benchmark runs as its own process with this interpreter; its output is shown as it comes.
--quick is passed to the benchmarks that accept it. The summary lists each benchmark's status
(ok, WRONG RESULT when its correctness check failed, OVER BUDGET, or failed with its exit code), its wall time and the `result:` lines it printed.
Exits 0: a benchmark over budget or failing is reported, not fatal.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULT_PREFIX = "result: "
OVER_BUDGET = "OVER BUDGET"
WRONG = "WRONG"  # what a benchmark prints when its correctness check fails


@dataclass
class Outcome:
    script: str
    seconds: float = 0.0
    returncode: int = 0
    over_budget: bool = False
    wrong: bool = False
    results: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.wrong:
            return "WRONG RESULT"  # a fast wrong answer is no figure at all
        if self.over_budget:
            return OVER_BUDGET  # some benchmarks also exit non-zero then; the budget is the news
        return "ok" if self.returncode == 0 else f"FAILED (exit {self.returncode})"


def accepts_quick(script: Path) -> bool:
    """Whether the script declares --quick, itself or through common.parse_args. Read from its source:
    asking the script (--help) would run the benchmarks that take no arguments at all."""
    source = script.read_text()
    return '"--quick"' in source or "common.parse_args(" in source


def run(script: Path, quick: bool) -> Outcome:
    outcome = Outcome(script.name)
    command = [sys.executable, "-u", str(script), *(["--quick"] if quick and accepts_quick(script) else [])]
    print(f"\n=== {script.name} {' '.join(command[3:])}".rstrip(), flush=True)
    started = time.perf_counter()
    with subprocess.Popen(command, cwd=BENCH_DIR.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            outcome.over_budget |= OVER_BUDGET in line
            outcome.wrong |= WRONG in line
            if line.startswith(RESULT_PREFIX):
                outcome.results.append(line[len(RESULT_PREFIX):].strip())
    outcome.seconds = time.perf_counter() - started
    outcome.returncode = process.returncode
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples and shorter runs in every benchmark")
    quick = parser.parse_args().quick
    outcomes = [run(script, quick) for script in sorted(BENCH_DIR.glob("bench_*.py"))]
    print(f"\n=== summary{' (--quick)' if quick else ''}")
    width = max(len(o.script) for o in outcomes)
    for outcome in outcomes:
        print(f"{outcome.script:<{width}}  {outcome.status:<16} {outcome.seconds:6.1f} s")
        for result in outcome.results:
            print(f"{'':<{width}}    {result}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
