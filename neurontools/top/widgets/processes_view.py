"""The Processes view: Neuron applications in a sortable, filterable table; `k` ends the selected
application's runtime session after a confirmation (unless --readonly or not live)."""

from __future__ import annotations

from textual import on
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Input

from neurontools.top import process_table
from neurontools.top.process_table import COLUMN_KEYS, COLUMNS, ProcessRow
from neurontools.top.widgets.table_sync import Cell, sync_rows


class ProcessTable(DataTable):
    # The table fills its view, so a scrollbar sits at the view's edge, never under the header; an
    # empty table has nothing to scroll to, so it shows no scrollbar at all.
    DEFAULT_CSS = """
    ProcessTable { height: 1fr; }
    ProcessTable.-empty { overflow-x: hidden; overflow-y: hidden; }
    """
    BINDINGS = [
        Binding("s", "app.sort_next", "sort by next column", show=False),
        Binding("r", "app.sort_reverse", "reverse sort", show=False),
        Binding("slash", "app.filter", "filter", show=False),
        Binding("k", "app.end_session", "end session", show=False),
    ]


class ProcessesView(Vertical):
    DEFAULT_CSS = """
    ProcessesView > Input { display: none; height: 3; }
    ProcessesView.-filtering > Input { display: block; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sort_by = "pid"
        self.descending = False
        self.needle = ""
        self.rows: list[ProcessRow] = []  # shown, in order
        self._all: list[ProcessRow] = []
        self._shown: dict[str, tuple[Cell, ...]] = {}

    def compose(self):
        yield Input(placeholder="filter by pid, tag, command or cores; enter keeps it, escape clears it")
        yield ProcessTable(cursor_type="row", zebra_stripes=True)

    @property
    def table(self) -> ProcessTable:
        return self.query_one(ProcessTable)

    def on_mount(self) -> None:
        for column in COLUMNS:
            self.table.add_column(column.label, key=column.key)
        self._label_columns()

    def show(self, rows: list[ProcessRow]) -> None:
        self._all = rows
        self._refresh_rows()

    def _refresh_rows(self) -> None:
        self.rows = process_table.arrange(self._all, self.sort_by, self.descending, self.needle)
        self._shown = sync_rows(self.table, COLUMN_KEYS, [(r.app.key, process_table.cells(r)) for r in self.rows],
                                self._shown)
        self.table.set_class(not self.rows, "-empty")

    def _label_columns(self) -> None:
        for column in COLUMNS:
            arrow = (" ▼" if self.descending else " ▲") if column.key == self.sort_by else ""
            self.table.columns[column.key].label = column.label + arrow  # type: ignore[index]
        self.table.refresh()

    def sort(self, column: str, descending: bool | None = None) -> None:
        if descending is None:  # the same column again reverses; a new one starts in its natural order
            descending = (not self.descending if column == self.sort_by
                          else process_table.column(column).descending_first)
        self.sort_by, self.descending = column, descending
        self._label_columns()
        self._refresh_rows()

    def sort_next(self) -> None:
        index = COLUMN_KEYS.index(self.sort_by)
        column = COLUMN_KEYS[(index + 1) % len(COLUMN_KEYS)]
        self.sort(column, process_table.column(column).descending_first)

    def start_filter(self) -> None:
        self.add_class("-filtering")
        self.query_one(Input).focus()

    @on(Input.Changed)
    def _filter_changed(self, event: Input.Changed) -> None:
        self.needle = event.value
        self._refresh_rows()

    @on(Input.Submitted)
    def _filter_kept(self) -> None:
        self.table.focus()

    def clear_filter(self) -> None:
        self.query_one(Input).value = ""
        self.needle = ""
        self.remove_class("-filtering")
        self.table.focus()
        self._refresh_rows()

    @on(DataTable.HeaderSelected)
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        self.sort(str(event.column_key.value))

    @property
    def selected(self) -> ProcessRow | None:
        table = self.table
        if not self.rows or not 0 <= table.cursor_row < len(self.rows):
            return None
        return self.rows[table.cursor_row]
