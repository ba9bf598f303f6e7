"""How deep the fuzzers reach: per fuzzer, the examples it ran and how many of them reached each of
its success paths, and how often each "nothing lost, bytes intact" oracle ran.

A fuzzer whose examples are all refused at the door tests only the door; these counts say whether
they got further. tests/conftest.py prints them in the terminal summary of any run that fuzzed.
"""

from __future__ import annotations

from collections import Counter, defaultdict


class Reach:
    def __init__(self) -> None:
        self.examples: Counter[str] = Counter()
        self.paths: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.oracles: Counter[str] = Counter()

    def example(self, fuzzer: str) -> None:
        """One example of `fuzzer` ran."""
        self.examples[fuzzer] += 1

    def reached(self, fuzzer: str, path: str) -> None:
        """The current example of `fuzzer` got as far as `path` (count it once per example)."""
        self.paths[fuzzer][path] += 1

    def checked(self, oracle: str, times: int = 1) -> None:
        """An oracle compared what the daemon holds with what it must hold, `times` times."""
        self.oracles[oracle] += times

    def lines(self) -> list[str]:
        out = []
        for fuzzer, examples in self.examples.items():
            paths = ", ".join(f"{path} {count / examples:.0%}" for path, count in self.paths[fuzzer].items())
            out.append(f"{fuzzer}: {examples} examples; reached: {paths or 'no success path'}")
        out.extend(f"oracle {oracle}: checked {count} times" for oracle, count in self.oracles.items())
        return out


REACH = Reach()
