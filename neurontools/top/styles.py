"""neuron-top's style sheet: the real tool's colours (blue title and tab bar, cyan section bars,
green bars and selected tab, red vCPU system ticks and tree cursor) in theme variables, so every
Textual theme keeps the real tool's look. Kept in Python so it ships with the package without
package-data configuration."""

CSS = """Screen { layout: vertical; }

#title {
    height: 1;
    width: 100%;
    content-align: center middle;
    background: $primary;
    color: $text;
    text-style: bold;
}

StatusLine.-info { background: $boost; color: $text; }
StatusLine.-notice { background: $warning 30%; color: $text; }
StatusLine.-error { background: $error; color: $text; text-style: bold; }

#views { height: 1fr; }

.section {
    height: 1;
    background: $secondary;
    color: $text;
    text-style: bold;
}

UtilizationGrid > .utilization--bar { color: $success; }
UtilizationGrid > .utilization--selected { text-style: reverse; }
UtilizationGrid > .utilization--header { text-style: bold; }

VcpuPanel > .vcpu--user { color: $success; }
VcpuPanel > .vcpu--system { color: $error; }

MemoryTreeView > .memory-tree--header { text-style: bold; }
MemoryTreeView > .memory-tree--model { text-style: dim; }
MemoryTreeView > .memory-tree--cursor { background: $error 70%; text-style: not dim; }
MemoryTreeView:blur > .memory-tree--cursor { background: $error 40%; }

#bottom { height: 2; dock: bottom; }
TabBar { background: $primary; color: $text; }
TabBar > .tab-bar--selected { color: $success; text-style: bold; }
KeyHelp > .key-help--key { text-style: bold; color: $accent; }

CoreHistoryGrid > .history--spark { color: $success; }
CoreHistoryGrid > .history--selected { text-style: reverse; }
EnginePanel { border-top: solid $secondary; }
EnginePanel > .engine--bar { color: $success; }
EnginePanel > .engine--title { text-style: bold; }

TopologyDrawing > .topology--idle { color: $text-muted; }
TopologyDrawing > .topology--busy { color: $success; }
TopologyDrawing > .topology--hot { color: $error; text-style: bold; }

HelpScreen { align: center middle; }
#help-box {
    width: 90%;
    max-width: 100;
    height: 90%;
    border: round $primary;
    background: $surface;
}
.help-title { text-style: bold; background: $primary; color: $text; }
.help-section { text-style: bold; color: $accent; margin-top: 1; }
.help-row.-clickable:hover { background: $boost; }
.help-footer { color: $text-muted; }

ConfirmScreen { align: center middle; }
#confirm-box {
    width: 70;
    max-width: 95%;
    height: auto;
    border: thick $error;
    background: $surface;
    padding: 1 2;
}
#confirm-buttons { height: auto; margin-top: 1; align-horizontal: center; }
#confirm-buttons Button { margin: 0 2; }
"""
