"""Draw the devices and their NeuronLinks, each link coloured by its load and labelled with its
throughput: a ring as two rows joined at both ends, a chain as one row, a torus as a grid (its
wrap-around links are in the table below the drawing), anything else as the table only. Labels
are bytes per second, both directions together; the table has each direction."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text

from neurontools.top.device_extras import DeviceExtras, LinkLoad
from neurontools.top.formatting import human_bytes, human_rate

BOX = 4  # "ND11"
SEGMENT_WITH_LABEL = 10  # "─ 12.3GB ─"
SEGMENT_BARE = 3


@dataclass(frozen=True)
class LoadStyles:
    idle: Style  # no traffic in the period, or the link is down
    busy: Style
    hot: Style  # over two thirds of the link's bandwidth

    def of(self, link: LinkLoad | None) -> Style:
        if link is None or not link.up or link.load <= 0:
            return self.idle
        return self.hot if link.load > 2 / 3 else self.busy


def positions(shape: str, count: int) -> dict[int, tuple[int, int]] | None:
    """(row, column) of each device in the drawing; None when the shape is not drawn."""
    if shape == "single":
        return {0: (0, 0)}
    if shape == "chain":
        return {i: (0, i) for i in range(count)}
    if shape == "ring":
        top = math.ceil(count / 2)
        placed = {i: (0, i) for i in range(top)}
        placed.update({i: (1, count - 1 - i) for i in range(top, count)})
        return placed
    if shape == "torus":
        side = math.isqrt(count)
        if side * side == count:
            return {i: (i // side, i % side) for i in range(count)}
    return None


def _link_between(links: dict[frozenset[int], LinkLoad], a: int, b: int) -> LinkLoad | None:
    return links.get(frozenset((a, b)))


def _label(link: LinkLoad | None) -> str:
    return "" if link is None else human_bytes(link.a_to_b + link.b_to_a)


def drawing(extras: DeviceExtras, width: int, styles: LoadStyles) -> list[Text]:
    placed = positions(extras.shape, extras.device_count)
    if placed is None:
        return []
    links = {frozenset((link.device_a, link.device_b)): link for link in extras.links}
    columns = max(c for _, c in placed.values()) + 1
    rows = max(r for r, _ in placed.values()) + 1
    labelled = BOX * columns + SEGMENT_WITH_LABEL * (columns - 1) <= width
    segment = SEGMENT_WITH_LABEL if labelled else SEGMENT_BARE
    at = {position: device for device, position in placed.items()}
    lines: list[Text] = []
    for row in range(rows):
        line = Text()
        for column in range(columns):
            device = at.get((row, column))
            line.append(f"ND{device}".ljust(BOX) if device is not None else " " * BOX, "bold")
            if column + 1 < columns:
                right = at.get((row, column + 1))
                link = _link_between(links, device, right) if device is not None and right is not None else None
                text = f" {_label(link)} ".center(segment, "─") if labelled and link else "─" * segment
                line.append(text if link else " " * segment, styles.of(link))
        lines.append(line)
        if row + 1 < rows:
            between = Text()
            for column in range(columns):
                upper, lower = at.get((row, column)), at.get((row + 1, column))
                link = _link_between(links, upper, lower) if upper is not None and lower is not None else None
                between.append(" " * (column * (BOX + segment) - between.cell_len))
                if link is not None:
                    between.append("│", styles.of(link))
                    if labelled:
                        between.append(f" {_label(link)}", styles.of(link))
            lines.append(between)
    return lines


def link_table(extras: DeviceExtras, styles: LoadStyles) -> list[Text]:
    lines = [Text(f"{'Link':<6}{'Devices':<12}{'A->B':>12}{'B->A':>12}{'Load':>8}", "bold")]
    for link in extras.links:
        line = Text(f"{link.link_id:<6}{f'ND{link.device_a} - ND{link.device_b}':<12}"
                    f"{human_rate(link.a_to_b):>12}{human_rate(link.b_to_a):>12}")
        line.append(f"{link.load * 100:7.1f}%" if link.up else "   down", styles.of(link))
        lines.append(line)
    return lines
