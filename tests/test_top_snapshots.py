"""The screen, as text, at 80x24, 120x40 and 200x60 over fixed recorded data (an inf2.48xlarge with
12 devices, 24 busy cores and 20 applications), compared with the goldens in
tests/snapshots/neuron-top/. Text, not SVG: it does not churn with colours or Textual's renderer,
and the colours are checked by the pilot tests where they carry meaning.

After an intended change, look at the new screens and rewrite the goldens with

    NEURON_TOP_UPDATE_GOLDENS=1 .venv/bin/pytest tests/test_top_snapshots.py
"""

from __future__ import annotations

import os

import pytest
from test_top_fixtures import SNAPSHOTS, ListSource, fixed_frames, run, screen_text, wait_until

from neurontools.top.app import NeuronTopApp

UPDATE = os.environ.get("NEURON_TOP_UPDATE_GOLDENS") == "1"
FRAMES = fixed_frames()

CASES = [
    ("overview", (80, 24), ()),
    ("overview", (120, 40), ()),
    ("overview", (200, 60), ()),
    ("overview-flops-tab3", (120, 40), ("f", "3")),
    ("cores", (80, 24), ("c",)),
    ("cores", (200, 60), ("c",)),
    ("topology", (80, 24), ("t",)),
    ("executions", (80, 24), ("e",)),
    ("processes", (80, 24), ("p",)),
    ("processes", (200, 60), ("p",)),
    ("help", (120, 40), ("question_mark",)),
]


def _screen(size: tuple[int, int], keys: tuple[str, ...]) -> str:
    result: list[str] = []

    async def body():
        app = NeuronTopApp(ListSource(FRAMES))
        async with app.run_test(size=size) as pilot:
            await wait_until(pilot, lambda: app.frames_shown == len(FRAMES))
            for key in keys:
                await pilot.press(key)
            await pilot.pause()
            result.append(screen_text(app))

    run(body())
    return result[0] + "\n"


@pytest.mark.parametrize("name, size, keys", CASES, ids=[f"{n}-{w}x{h}" for n, (w, h), _ in CASES])
def test_screen_matches_golden(name: str, size: tuple[int, int], keys: tuple[str, ...]) -> None:
    screen = _screen(size, keys)
    lines = screen.splitlines()
    assert len(lines) == size[1] and all(len(line) <= size[0] for line in lines)
    golden = SNAPSHOTS / f"{name}-{size[0]}x{size[1]}.txt"
    if UPDATE or not golden.exists():
        golden.write_text(screen)
        if not UPDATE:
            pytest.fail(f"wrote the missing golden {golden.name}: check it, then run again")
    assert screen == golden.read_text()


def test_the_goldens_show_what_the_real_tool_shows() -> None:
    """A golden is only as good as what it holds: the overview's must have every section."""
    overview = (SNAPSHOTS / "overview-200x60.txt").read_text()
    for text in ("neuron-top 0.1.0 running on i-0a1b2c3d4e5f67890 (inf2.48xlarge)", "NeuronCore v2 Utilization (Avg:",
                 "ND11", "[", "%]", "System vCPU Usage", "Runtime vCPU Usage", "Host Used Memory",
                 "Device Used Memory", "Model Scratchpad:", "Model ID", "Device Memory", "Host Memory",
                 "[-] ND 0", "[+] ", "Neuron Apps", ">[1]:all<", "q: quit"):
        assert text in overview, text
    small = (SNAPSHOTS / "overview-80x24.txt").read_text()
    assert all(f"ND{d} " in small for d in range(12))  # every device still shown at 80x24
