"""Keep a DataTable in step with new rows cheaply: when the rows are the same and in the same order
only changed cells are rewritten (Textual issue 6457: rewriting every cell each tick is costly);
otherwise the rows are rebuilt and the cursor stays on the same row key."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable

Cell = str | Text
Row = tuple[str, tuple[Cell, ...]]  # row key, cells in column order


def sync_rows(table: DataTable, column_keys: Sequence[str], rows: Sequence[Row],
              previous: dict[str, tuple[Cell, ...]]) -> dict[str, tuple[Cell, ...]]:
    """Show `rows`; `previous` is what the last call returned (the cells now on screen)."""
    keys = [key for key, _ in rows]
    if keys == list(previous):
        for key, cells in rows:
            for column, old, new in zip(column_keys, previous[key], cells):
                if old != new:
                    table.update_cell(key, column, new)
        return dict(rows)
    cursor_key = None
    if table.row_count and 0 <= table.cursor_row < table.row_count:
        cursor_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if cursor_key in keys:
        table.move_cursor(row=keys.index(cursor_key), animate=False)
    return dict(rows)
