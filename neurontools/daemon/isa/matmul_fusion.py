"""Fused execution of matmuls (execution only: the cost model sees every instruction)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from neurontools.daemon.isa.operands import View, overlap
from neurontools.daemon.isa.instruction import Env, Instruction, Opcode, read_view
from neurontools.daemon.isa.matmul import Matmul, execute_matmul, matmul_operand


# -- fused execution of matmuls ---------------------------------------------------------------------
# A tiled matmul issues thousands of small matmuls; numpy is fast only on large products. Execution
# (not the cost model, which still sees every instruction) therefore fuses them, keeping FP32
# accumulation:
#  - an accumulation group -- consecutive matmuls into one PSUM view, all but the first accumulating --
#    is one product: dst (=|+=) sum_i S_i.T @ M_i = S.T @ M, the S_i and the M_i stacked along K;
#  - groups that multiply the same moving operands (one panel of B against several blocks of A.T) are
#    computed together at the first group's place, their stationary operands side by side, when nothing
#    in between writes any of their operands; each result reaches its PSUM view at its group's own place.
# The numbers are the same up to the order of the FP32 additions.

_BATCH_MAX_WRITES = 256  # writes tracked while a batch stays open (bounds the compile-time work)


@dataclass(frozen=True)
class _MatmulGroup:
    first: Matmul
    runs: tuple[tuple[Matmul, ...], ...]  # matmuls sharing K and operand dtypes, in program order

    @property
    def signature(self) -> tuple:
        """Equal for groups that multiply the same moving operands in the same layout."""
        return tuple((run[0].stationary.partitions, run[0].stationary.dtype, run[0].moving.dtype,
                      tuple(op.moving for op in run)) for run in self.runs)

    @property
    def operands(self) -> list[View]:
        return [view for run in self.runs for op in run for view in (op.stationary, op.moving)]


def _matmul_group(ops: list[Matmul]) -> _MatmulGroup:
    runs: dict[tuple, list[Matmul]] = {}
    for op in ops:
        runs.setdefault((op.stationary.partitions, op.stationary.dtype, op.moving.dtype), []).append(op)
    return _MatmulGroup(ops[0], tuple(tuple(run) for run in runs.values()))


@dataclass(frozen=True)
class _Batch:
    key: int  # a run keeps the batch's results in env[key] until the last group has taken its rows
    groups: tuple[_MatmulGroup, ...]
    # Per K run: when every chunk's stationary operands of the groups lie side by side in one tile, the
    # views covering them (the batch's stationary operand without concatenating); else None.
    side_by_side: tuple[tuple[View, ...] | None, ...]


def _side_by_side(views: list[View]) -> View | None:
    """One view covering `views` if they are adjacent column ranges of the same partitions of one tile."""
    first = views[0]
    if any(view.pattern for view in views):  # access patterns are read one by one
        return None
    for before, after in zip(views, views[1:]):
        if (after.name != first.name or after.bounds[0] != first.bounds[0]
                or after.bounds[1][0] != before.bounds[1][1]):
            return None
    return dataclasses.replace(first, bounds=(first.bounds[0], (first.bounds[1][0], views[-1].bounds[1][1])))


def _new_batch(key: int, groups: tuple[_MatmulGroup, ...]) -> _Batch:
    side_by_side = []
    for r, run in enumerate(groups[0].runs):
        views = [_side_by_side([group.runs[r][i].stationary for group in groups]) for i in range(len(run))]
        side_by_side.append(tuple(views) if all(views) else None)
    return _Batch(key, groups, tuple(side_by_side))


@dataclass(frozen=True)
class _WriteBack:
    batch: _Batch
    group: _MatmulGroup
    rows: tuple[int, int]
    last: bool


def _stacked(env: Env, views: list[View]) -> np.ndarray:
    """[K, X] views stacked to [K * g, X] with row p * g + i = views[i][p] (the same order for both
    operands of a group keeps the contraction aligned). Equally spaced column blocks of one tile are a
    reshape -- a view without copying when the blocks tile it exactly."""
    first = views[0]
    if len(views) == 1:
        return read_view(env, first)
    k, width = first.shape
    array = env[first.name]
    (p0, p1), (c0, _) = first.bounds
    step = views[1].bounds[1][0] - c0
    end = c0 + step * len(views)
    if (step >= width and end <= array.shape[1] and not any(v.pattern for v in views)
            and all(v.name == first.name and v.bounds[0] == (p0, p1) and v.bounds[1][0] == c0 + i * step
                    for i, v in enumerate(views))):
        blocks = array[p0:p1, c0:end].reshape(k, len(views), step)
        return blocks[:, :, :width].reshape(k * len(views), width)
    return np.stack([read_view(env, v) for v in views], axis=1).reshape(k * len(views), width)


def _stationary(env: Env, run: tuple[Matmul, ...]) -> np.ndarray:
    return matmul_operand(_stacked(env, [op.stationary for op in run]), run[0].stationary.dtype)


def _moving(env: Env, run: tuple[Matmul, ...]) -> np.ndarray:
    return matmul_operand(_stacked(env, [op.moving for op in run]), run[0].moving.dtype)


def _write_result(first: Matmul, env: Env, values: np.ndarray) -> None:
    out = env[first.dst.name][first.dst.index]
    if first.accumulate:
        out += values
    else:
        out[...] = values


def _execute_matmul_group(group: _MatmulGroup, env: Env) -> None:
    total = None
    for run in group.runs:
        part = _stationary(env, run).T @ _moving(env, run)
        total = part if total is None else np.add(total, part, out=total)
    _write_result(group.first, env, total)


def _execute_batch(batch: _Batch, env: Env) -> None:
    total = None
    for r, run in enumerate(batch.groups[0].runs):
        combined = batch.side_by_side[r]
        if combined is not None:
            stationary = matmul_operand(_stacked(env, list(combined)), run[0].stationary.dtype)
        else:
            stationary = np.concatenate([_stationary(env, group.runs[r]) for group in batch.groups], axis=1)
        part = stationary.T @ _moving(env, run)
        total = part if total is None else np.add(total, part, out=total)
    env[batch.key] = total


def _execute_write_back(step: _WriteBack, env: Env) -> None:
    _write_result(step.group.first, env, env[step.batch.key][step.rows[0]:step.rows[1]])
    if step.last:
        del env[step.batch.key]


def _batches(items: list) -> list[list[int]]:
    """Indices of the groups in `items` computed together (see above): consecutive groups with one
    signature, while no instruction in between writes the moving operands or a later group's operands."""
    batches: list[list[int]] = []
    current: list[int] | None = None
    signature: tuple = ()
    moving: list[View] = []
    written: list[View] = []
    for index, item in enumerate(items):
        if isinstance(item, _MatmulGroup):
            if (current is not None and item.signature == signature
                    and not any(overlap(v, w) for v in item.operands for w in written)):
                current.append(index)
            else:
                current, signature, written = [index], item.signature, []
                moving = [op.moving for run in item.runs for op in run]
                batches.append(current)
        elif current is not None:
            for view in item[1].writes:
                if any(overlap(view, m) for m in moving) or len(written) >= _BATCH_MAX_WRITES:
                    current = None
                    break
                written.append(view)
    return [batch for batch in batches if len(batch) > 1]


def executable(steps: list[tuple[Opcode, Instruction]]) -> list[tuple[Callable[[Any, Env], None], Any]]:
    """The steps a run executes: the instructions, with matmuls fused (see the top of this module)."""
    items: list = []  # (execute, op) pairs and _MatmulGroups
    i = 0
    while i < len(steps):
        opcode, op = steps[i]
        j = i + 1
        if isinstance(op, Matmul):
            while (j < len(steps) and isinstance(steps[j][1], Matmul) and steps[j][1].accumulate
                   and steps[j][1].dst == op.dst):
                j += 1
            items.append(_matmul_group([m for _, m in steps[i:j]]))
        else:
            items.append((opcode.execute, op))
        i = j
    placed: dict[int, list[tuple[Callable[[Any, Env], None], Any]]] = {}
    for key, members in enumerate(_batches(items)):
        batch = _new_batch(key, tuple(items[m] for m in members))
        placed[members[0]] = [(_execute_batch, batch)]
        row = 0
        for m, group in zip(members, batch.groups):
            rows = (row, row + group.first.dst.partitions)
            placed.setdefault(m, []).append((_execute_write_back, _WriteBack(batch, group, rows, m == members[-1])))
            row = rows[1]
    out: list[tuple[Callable[[Any, Env], None], Any]] = []
    for index, item in enumerate(items):
        if index in placed:
            out.extend(placed[index])
        elif isinstance(item, _MatmulGroup):
            single = len(item.runs) == 1 and len(item.runs[0]) == 1
            out.append((execute_matmul, item.first) if single else (_execute_matmul_group, item))
        else:
            out.append(item)
    return out
