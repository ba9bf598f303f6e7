"""Memory Usage Details: the tree ND -> NC -> models and categories, from `memory_used` groups.

The rules follow the reference (neuron-tools.md section 2.6) and its screenshot sums: a model row
is the memory its subgraphs on that core allocated at load time; each category row of a core is the
rest of that category (core breakdown minus what the core's models account for), hidden when
zero; a parent is the sum of its children. Device rows exist only for devices with a used core.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from neurontools.monitor.report import LoadedModel, RuntimeData

NodeKind = Literal["device", "core", "model", "category"]
NodeKey = tuple[int | str, ...]

# (label, key in neuroncore_memory_usage, key in a subgraph's device breakdown)
_CORE_CATEGORIES = (
    ("Tensors", "tensors", "tensors"),
    ("Constants", "constants", "constants"),
    ("Model Code", "model_code", "model_code"),
    ("Runtime Memory", "runtime_memory", "runtime_memory"),
    ("Model Scratchpad", "model_shared_scratchpad", None),
)
# (label, device breakdown key, host breakdown key) of the rows under a model
_MODEL_CATEGORIES = (
    ("Tensors", "tensors", "tensors"),
    ("Constants", "constants", "constants"),
    ("Model Code", "model_code", None),
    ("Runtime Memory", "runtime_memory", None),
    ("DMA Buffers", None, "dma_buffers"),
    ("App. Memory", None, "application_memory"),
)


_DEVICE_KEYS = ("tensors", "constants", "model_code", "runtime_memory")
_HOST_KEYS = ("tensors", "constants", "dma_buffers", "application_memory")


def _fields(breakdown: object, names: tuple[str, ...]) -> dict[str, int]:
    return {name: getattr(breakdown, name) for name in names}


@dataclass(frozen=True)
class MemoryNode:
    key: NodeKey  # stable across reports: expansion state and the cursor follow it
    kind: NodeKind
    label: str
    device_bytes: int
    host_bytes: int
    model_id: int | None = None
    core_id: int | None = None  # global NeuronCore index, for core, model and category rows
    children: tuple["MemoryNode", ...] = ()


@dataclass(frozen=True)
class _SubgraphUse:
    model: LoadedModel
    device_bytes: int
    host_bytes: int
    device: dict[str, int]  # device breakdown by category
    host: dict[str, int]  # host breakdown by category


@dataclass
class _CoreUse:
    categories: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    models: dict[tuple[int, int], list[_SubgraphUse]] = field(default_factory=dict)  # by (pid, model id)


def _collect(runtimes: Iterable[RuntimeData]) -> dict[int, _CoreUse]:
    cores: dict[int, _CoreUse] = defaultdict(_CoreUse)
    for runtime in runtimes:
        memory = runtime.report.memory_used
        if memory is None:
            continue
        for core, usage in memory.neuron_runtime_used_bytes.usage_breakdown.neuroncore_memory_usage.items():
            if not core.isdigit():
                continue
            target = cores[int(core)].categories
            for _, name, _ in _CORE_CATEGORIES:
                target[name] += getattr(usage, name)
        for model in memory.loaded_models:
            for subgraph in model.subgraphs.values():
                used = subgraph.memory_used_bytes
                entry = cores[subgraph.neuroncore_index].models.setdefault((runtime.pid, model.model_id), [])
                entry.append(_SubgraphUse(model, used.neuron_device, used.host,
                                          _fields(used.usage_breakdown.neuron_device, _DEVICE_KEYS),
                                          _fields(used.usage_breakdown.host, _HOST_KEYS)))
    return cores


def _model_node(core: int, pid: int, parts: list[_SubgraphUse]) -> MemoryNode:
    model = parts[0].model
    device = sum(p.device_bytes for p in parts)
    host = sum(p.host_bytes for p in parts)
    rows = []
    for label, device_key, host_key in _MODEL_CATEGORIES:
        d = sum(p.device.get(device_key, 0) for p in parts) if device_key else 0
        h = sum(p.host.get(host_key, 0) for p in parts) if host_key else 0
        if d or h:
            rows.append(MemoryNode(("model", core, pid, model.model_id, label), "category", label, d, h,
                                   core_id=core))
    return MemoryNode(("model", core, pid, model.model_id), "model", model.name, device, host,
                      model_id=model.model_id, core_id=core, children=tuple(rows))


def _core_node(core: int, local: int, use: _CoreUse) -> MemoryNode | None:
    models = [_model_node(core, pid, parts) for (pid, _), parts in sorted(use.models.items())]
    attached: dict[str, int] = defaultdict(int)
    for parts in use.models.values():
        for part in parts:
            for key, value in part.device.items():
                attached[key] += value
    rows = []
    for label, name, subgraph_key in _CORE_CATEGORIES:
        rest = use.categories.get(name, 0) - (attached.get(subgraph_key, 0) if subgraph_key else 0)
        if rest > 0:
            rows.append(MemoryNode(("category", core, label), "category", label, rest, 0, core_id=core))
    children = (*models, *rows)
    if not children:
        return None
    return MemoryNode(("core", core), "core", f"NC {local}", sum(c.device_bytes for c in children),
                      sum(c.host_bytes for c in children), core_id=core, children=children)


def memory_tree(runtimes: Iterable[RuntimeData], cores_per_device: int) -> tuple[MemoryNode, ...]:
    """The tree's device nodes, in device order."""
    per_core = _collect(runtimes)
    per_device: dict[int, list[MemoryNode]] = defaultdict(list)
    for core in sorted(per_core):
        device, local = divmod(core, max(cores_per_device, 1))
        node = _core_node(core, local, per_core[core])
        if node is not None:
            per_device[device].append(node)
    return tuple(
        MemoryNode(("device", device), "device", f"ND{device:2d}", sum(c.device_bytes for c in nodes),
                   sum(c.host_bytes for c in nodes), children=tuple(nodes))
        for device, nodes in sorted(per_device.items()))


def walk(nodes: Iterable[MemoryNode]) -> Iterator[MemoryNode]:
    """Every node, depth first."""
    for node in nodes:
        yield node
        yield from walk(node.children)
