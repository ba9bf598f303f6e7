"""The go-flags-style parser neuron-ls and neuron-monitor share: syntax and error wording of Go's
jessevdk/go-flags (the real tools are built with it)."""

import pytest

from neurontools.go_flags import Flag, UsageError, parse

FLAGS = (Flag("wide", "w"), Flag("all", "a"), Flag("config-file", "c", takes_value=True),
         Flag("address", takes_value=True))


@pytest.mark.parametrize("argv, expected", [
    ([], {}),
    (["-aw"], {"all": True, "wide": True}),
    (["--address=unix:///x.sock"], {"address": "unix:///x.sock"}),
    (["--address", "h:1"], {"address": "h:1"}),
    (["--address="], {"address": ""}),
    (["-cfile.json"], {"config-file": "file.json"}),
    (["-c", "file.json"], {"config-file": "file.json"}),
    (["-wcfile.json"], {"wide": True, "config-file": "file.json"}),
    (["--address", "a", "--address", "b"], {"address": "b"}),
    (["-w", "--"], {"wide": True}),
])
def test_parses_what_go_flags_accepts(argv, expected):
    assert parse(argv, FLAGS) == expected


@pytest.mark.parametrize("argv, message", [
    (["--bogus"], "unknown flag `bogus'"),
    (["-x"], "unknown flag `x'"),
    (["-wx"], "unknown flag `x'"),
    (["--wide=1"], "bool flag `--wide' cannot have an argument"),
    (["--address"], "expected argument for flag `--address'"),
    (["-c"], "expected argument for flag `-c, --config-file'"),
    (["extra"], "unexpected argument `extra'"),
    (["--", "extra"], "unexpected argument `extra'"),
])
def test_errors_in_go_flags_words(argv, message):
    with pytest.raises(UsageError) as raised:
        parse(argv, FLAGS)
    assert str(raised.value) == message


def test_both_go_tools_use_it():
    from neurontools.ls import options as ls_options
    from neurontools.monitor import cli as monitor_cli
    assert ls_options.UsageError is UsageError and monitor_cli.UsageError is UsageError
