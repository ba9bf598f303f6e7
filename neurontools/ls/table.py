"""ASCII tables the way Go's olekukonko/tablewriter draws them for neuron-ls.

`+`/`-`/`|` borders, one space of padding, two-line headers centred (odd spare space on the right),
data cells left-aligned, column width = widest cell or header line.
"""

from __future__ import annotations

from collections.abc import Sequence

Title = tuple[str, str]  # the two header lines of a column
Row = Sequence[str]


def _centred(text: str, width: int) -> str:
    spare = width - len(text)
    left = spare // 2
    return " " * left + text + " " * (spare - left)


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def render_table(titles: Sequence[Title], groups: Sequence[Sequence[Row]], *, group_borders: bool) -> str:
    """The table, newline-terminated. `groups` are runs of rows (one run per device); with
    `group_borders` a border line closes every run, otherwise only the last one."""
    columns = range(len(titles))
    widths = [max(len(titles[c][0]), len(titles[c][1]), *(len(row[c]) for rows in groups for row in rows))
              for c in columns]
    border = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    lines = [border,
             _line([_centred(titles[c][0], widths[c]) for c in columns]),
             _line([_centred(titles[c][1], widths[c]) for c in columns]),
             border]
    for number, rows in enumerate(groups, start=1):
        lines.extend(_line([row[c].ljust(widths[c]) for c in columns]) for row in rows)
        if group_borders or number == len(groups):
            lines.append(border)
    return "\n".join(lines) + "\n"
