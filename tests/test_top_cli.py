"""neuron-top's command line: flag errors exit 2 with the usage before the terminal is touched."""

from __future__ import annotations

import pytest

from neurontools.top.cli import main


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == "neuron-top 0.1.0\n"


def test_help_lists_the_sources(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--address", "--interval", "--stdin", "--replay", "--readonly", "--theme"):
        assert flag in out


@pytest.mark.parametrize("argv, message", [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["extra"], "unrecognized arguments: extra"),
    (["--interval", "0"], "the shortest interval is 0.1 s"),
    (["--interval", "soon"], "'soon' is not a number of seconds"),
    (["--stdin", "--replay", "x.ndjson"], "not allowed with argument"),
])
def test_bad_flags_print_the_usage_and_exit_2(capsys, argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: neuron-top") and message in err


def test_replay_of_a_missing_file_exits_2(capsys, tmp_path) -> None:
    assert main(["--replay", str(tmp_path / "none.ndjson")]) == 2
    assert "cannot replay" in capsys.readouterr().err


def test_an_unknown_theme_exits_2_and_names_the_known_ones(capsys, tmp_path) -> None:
    recording = tmp_path / "run.ndjson"
    recording.write_text("")
    assert main(["--replay", str(recording), "--theme", "no-such-theme"]) == 2
    err = capsys.readouterr().err
    assert "unknown theme 'no-such-theme'" in err and "textual-dark" in err


def test_stdin_without_a_pipe_says_how_to_use_it(capsys, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    assert main(["--stdin"]) == 2
    assert "neuron-monitor | neuron-top --stdin" in capsys.readouterr().err
