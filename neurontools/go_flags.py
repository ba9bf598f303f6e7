"""Command lines read the way Go's jessevdk/go-flags reads them, for the clones of the Go tools
(neuron-ls, neuron-monitor): same syntax, same error wording.

Long flags take `--flag=value` or `--flag value`; short switches combine (`-aw`); a short flag with
a value takes the rest of its word or the next one (`-cFILE`, `-c FILE`); `--` ends the flags, and
nothing may follow. Each tool keeps its own usage text (verbatim from the real tool) and turns
the parsed values into its options.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence


class UsageError(ValueError):
    """A go-flags error message; the tools print it with their usage on stdout and exit 1."""


class Flag:
    """One option: its long name, its one-letter name, and whether it takes a value.
    (A plain class: importing dataclasses would add milliseconds to `neuron-ls --help`.)"""

    __slots__ = ("long", "short", "takes_value")

    def __init__(self, long: str, short: str | None = None, *, takes_value: bool = False) -> None:
        self.long = long
        self.short = short
        self.takes_value = takes_value

    @property
    def display(self) -> str:
        """How go-flags names the flag in errors: `-c, --config-file` or `--address`."""
        return f"-{self.short}, --{self.long}" if self.short else f"--{self.long}"


def parse(argv: Sequence[str], flags: Sequence[Flag]) -> dict[str, str | bool]:
    """{long name: value} for the flags given: the text for value flags, True for switches.
    A flag given twice keeps its last value, as go-flags does for scalar options."""
    by_long = {flag.long: flag for flag in flags}
    by_short = {flag.short: flag for flag in flags if flag.short}
    found: dict[str, str | bool] = {}
    args = iter(argv)
    for arg in args:
        if arg == "--":
            rest = list(args)
            if rest:
                raise UsageError(f"unexpected argument `{rest[0]}'")
            break
        if arg.startswith("--"):
            name, has_value, value = arg[2:].partition("=")
            flag = by_long.get(name)
            if flag is None:
                raise UsageError(f"unknown flag `{name}'")
            if flag.takes_value:
                found[name] = value if has_value else _next_value(args, flag)
            elif has_value:
                raise UsageError(f"bool flag `--{name}' cannot have an argument")
            else:
                found[name] = True
        elif arg.startswith("-") and len(arg) > 1:
            letters = arg[1:]
            for position, letter in enumerate(letters):
                flag = by_short.get(letter)
                if flag is None:
                    raise UsageError(f"unknown flag `{letter}'")
                if flag.takes_value:
                    found[flag.long] = letters[position + 1:] or _next_value(args, flag)
                    break
                found[flag.long] = True
        else:
            raise UsageError(f"unexpected argument `{arg}'")
    return found


def _next_value(args: Iterator[str], flag: Flag) -> str:
    value = next(args, None)
    if value is None:
        raise UsageError(f"expected argument for flag `{flag.display}'")
    return value
