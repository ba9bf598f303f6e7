"""The `neuron-ls --topology` drawing of the NeuronLink shape below the table.

Torus: verbatim layout of the trn1/trn2 docs (4x4, `*` marks wrap-around, lines padded to the row
width as in the current docs). Chain: the inf1 docs' one-line chain. Ring: the chain with the
torus's wrap-around arrows at both ends (the reference's inferred inf2.48xlarge drawing).
Single-device and custom machines draw nothing.
"""

from __future__ import annotations

from math import isqrt

TITLE = "Neuron Device Topology"
LEGEND = "Legend:\n\n        *––► = Wrap-around link\n"
_LINK = "◄––►"
_WRAP_IN = "*––►"
_WRAP_OUT = "◄––*"


def _box(index: int) -> str:
    return f"[{index:2d} ]"


def _row(indices: range) -> str:
    return _LINK.join(_box(i) for i in indices)


def _torus(count: int) -> list[str]:
    side = isqrt(count)
    rows = [_WRAP_IN + _row(range(r * side, (r + 1) * side)) + _WRAP_OUT for r in range(side)]
    width = len(rows[0])
    # box k starts after the wrap arrow and k (box + link) pairs; its centre is 2 further in
    centres = [len(_WRAP_IN) + k * (len(_box(0)) + len(_LINK)) + 2 for k in range(side)]

    def marks(symbol: str) -> str:
        line = [" "] * width
        for centre in centres:
            line[centre] = symbol
        return "".join(line)

    lines = [marks("*"), marks("│"), marks("▼")]
    for number, row in enumerate(rows, start=1):
        lines.append(row)
        lines += [marks("▲"), marks("│"), marks("▼" if number < side else "*")]
    return lines


def render_drawing(shape: str, device_count: int) -> str:
    """Everything printed after the table for `shape`; empty when there is nothing to draw."""
    if shape == "torus":
        return "\n\n" + TITLE + "\n" + "\n".join(_torus(device_count)) + "\n\n" + LEGEND
    if shape == "ring":
        return ("\n\n" + TITLE + "\n\n" + _WRAP_IN + _row(range(device_count)) + _WRAP_OUT + "\n\n"
                + LEGEND)
    if shape == "chain":
        return "\n\n" + TITLE + "\n\n  " + _row(range(device_count)) + "\n"
    return ""
