"""Memory Usage Details: the expandable tree with Model ID, Device Memory and Host Memory columns.

A line-API widget: only visible rows are rendered, and the tree is re-flattened only when a report
or the expansion changes. Expansion state and the cursor are kept by node key, so they survive
every refresh. Keys as the real tool: arrows move, enter toggles a node; a click selects a row and
a click on its `[+]`/`[-]` (or a double click) toggles it.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from neurontools.top.formatting import human_bytes
from neurontools.top.memory_tree import MemoryNode, NodeKey, walk

INDENT = 4
EXPANDED_BY_DEFAULT = ("device", "core")  # models start collapsed, as in the real tool's screenshots


def columns_for(width: int) -> tuple[int, int, int]:
    """Widths of the Model ID, Device Memory and Host Memory columns."""
    return (16, 21, 12) if width >= 100 else (9, 14, 12)


def _path(nodes: tuple[MemoryNode, ...], key: NodeKey | None) -> list[NodeKey]:
    """Keys from a root down to the node with `key`; [] when it is not in the tree."""
    for node in nodes:
        if node.key == key:
            return [node.key]
        below = _path(node.children, key)
        if below:
            return [node.key, *below]
    return []


class MemoryTreeView(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    MemoryTreeView { height: 1fr; scrollbar-size-vertical: 1; overflow-x: hidden; }
    """
    COMPONENT_CLASSES = {"memory-tree--header", "memory-tree--cursor", "memory-tree--model"}
    BINDINGS = [
        Binding("up", "cursor(-1)", "move tree selection", show=False),
        Binding("down", "cursor(1)", "move tree selection", show=False),
        Binding("pageup", "cursor(-10)", show=False),
        Binding("pagedown", "cursor(10)", show=False),
        Binding("left", "collapse_or_parent", show=False),
        Binding("right", "expand_or_child", show=False),
        Binding("enter", "toggle", "expand/collapse tree", show=False),
    ]

    class NodeHighlighted(Message):
        def __init__(self, node: MemoryNode) -> None:
            super().__init__()
            self.node = node

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.roots: tuple[MemoryNode, ...] = ()
        self.expanded: set[NodeKey] = set()
        self._seen: set[NodeKey] = set()
        self.rows: list[tuple[MemoryNode, int]] = []  # visible rows: node and depth
        self.cursor_key: NodeKey | None = None

    # --- data ---

    def show(self, roots: tuple[MemoryNode, ...]) -> None:
        if roots == self.roots:  # memory rarely changes between reports: skip the redraw
            return
        self.roots = roots
        for node in walk(roots):
            if node.key not in self._seen:
                self._seen.add(node.key)
                if node.kind in EXPANDED_BY_DEFAULT:
                    self.expanded.add(node.key)
        self._reflow()

    def _reflow(self) -> None:
        rows: list[tuple[MemoryNode, int]] = []

        def add(nodes: tuple[MemoryNode, ...], depth: int) -> None:
            for node in nodes:
                rows.append((node, depth))
                if node.children and node.key in self.expanded:
                    add(node.children, depth + 1)

        add(self.roots, 0)
        self.rows = rows
        if self.cursor_row is None and rows:
            # the cursor's node went into a collapsed parent (show the parent) or away (go to the top)
            visible = {node.key for node, _ in rows}
            path = [key for key in _path(self.roots, self.cursor_key) if key in visible]
            self.cursor_key = path[-1] if path else rows[0][0].key
        self.virtual_size = Size(self.size.width, len(rows) + 1)  # +1: the column header
        self.refresh()

    @property
    def cursor_row(self) -> int | None:
        return next((i for i, (node, _) in enumerate(self.rows) if node.key == self.cursor_key), None)

    @property
    def cursor_node(self) -> MemoryNode | None:
        row = self.cursor_row
        return None if row is None else self.rows[row][0]

    def toggle_all(self) -> None:
        """The x key: expand the entire tree, or collapse it when all of it is expanded."""
        parents = {node.key for node in walk(self.roots) if node.children}
        self.expanded = set() if parents <= self.expanded else parents
        self._reflow()
        self._cursor_moved()

    # --- actions ---

    def _move_to(self, row: int) -> None:
        if not self.rows:
            return
        row = max(0, min(len(self.rows) - 1, row))
        self.cursor_key = self.rows[row][0].key
        # virtual line row+1 is the row (line 0 is the sticky header): keep both lines in view
        self.scroll_to_region(Region(0, row, 1, 2), animate=False, immediate=True, force=True)
        self.refresh()
        self._cursor_moved()

    def _cursor_moved(self) -> None:
        node = self.cursor_node
        if node is not None:
            self.post_message(self.NodeHighlighted(node))

    def action_cursor(self, delta: int) -> None:
        row = self.cursor_row
        self._move_to(0 if row is None else row + delta)

    def action_toggle(self) -> None:
        node = self.cursor_node
        if node is not None and node.children:
            self.expanded ^= {node.key}
            self._reflow()

    def action_collapse_or_parent(self) -> None:
        row = self.cursor_row
        if row is None:
            return
        node, depth = self.rows[row]
        if node.children and node.key in self.expanded:
            self.action_toggle()
            return
        parent = next((i for i in range(row - 1, -1, -1) if self.rows[i][1] < depth), None)
        if parent is not None:
            self._move_to(parent)

    def action_expand_or_child(self) -> None:
        node = self.cursor_node
        if node is None or not node.children:
            return
        if node.key not in self.expanded:
            self.action_toggle()
        else:
            self.action_cursor(1)

    def on_click(self, event: events.Click) -> None:
        row = event.y - 1 + self.scroll_offset.y
        if event.y < 1 or not 0 <= row < len(self.rows):
            return
        node, depth = self.rows[row]
        self._move_to(row)
        on_expander = depth * INDENT + 1 <= event.x < depth * INDENT + 4
        if node.children and (on_expander or event.chain >= 2):
            self.action_toggle()

    # --- rendering ---

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if y == 0:
            return self._strip(self._header(width), width)
        row = y - 1 + self.scroll_offset.y
        if not 0 <= row < len(self.rows):
            return Strip.blank(width, self.rich_style)
        node, depth = self.rows[row]
        text = self._row(node, depth, width)
        if node.key == self.cursor_key:
            text.stylize(self.get_component_rich_style("memory-tree--cursor"))
        return self._strip(text, width)

    def _strip(self, text: Text, width: int) -> Strip:
        text.truncate(width, pad=True)
        return Strip(text.render(self.app.console), width).apply_style(self.rich_style)

    def _header(self, width: int) -> Text:
        model_id, device, host = columns_for(width)
        label = max(0, width - model_id - device - host)
        return Text(" " * label + "Model ID".ljust(model_id) + "Device Memory".ljust(device) + "Host Memory",
                    self.get_component_rich_style("memory-tree--header"))

    def _row(self, node: MemoryNode, depth: int, width: int) -> Text:
        model_id, device, host = columns_for(width)
        label_width = max(8, width - model_id - device - host)
        prefix = " " * (depth * INDENT + 1)
        if node.children:
            prefix += "[-] " if node.key in self.expanded else "[+] "
        room = label_width - len(prefix) - 1
        label = node.label if len(node.label) <= room else "…" + node.label[-(room - 1):] if room > 1 else ""
        text = Text((prefix + label).ljust(label_width))
        text.append(("" if node.model_id is None else str(node.model_id)).ljust(model_id))
        text.append(human_bytes(node.device_bytes).ljust(device))
        text.append(human_bytes(node.host_bytes))
        if node.kind == "model":
            text.stylize(self.get_component_rich_style("memory-tree--model"))
        return text

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.rows) + 1)
