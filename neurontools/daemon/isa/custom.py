"""custom_op: a registered operator (custom_ops.py) run on the GpSimd engine."""

from __future__ import annotations

from dataclasses import dataclass

from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.isa import cost_model, custom_ops
from neurontools.daemon.isa.operands import Context, View, fmt_shape
from neurontools.daemon.isa.instruction import Env, Instruction, Opcode, read_fp32, store_fp32


# custom_op: a registered operator of neurontools.daemon.isa.custom_ops, run on the GpSimd engine.

@dataclass(frozen=True, kw_only=True)
class _CustomOp(Instruction):
    operator: custom_ops.CustomOperator
    inputs: tuple[View, ...]
    outputs: tuple[View, ...]
    attributes: dict[str, float]


def _validate_custom_op(ctx: Context, msg: pb.CustomOp) -> _CustomOp:
    operator = custom_ops.REGISTRY.get(msg.name)
    if operator is None:
        raise ctx.fail(f'no custom operator "{msg.name}" is registered in this daemon; registered: '
                       + ", ".join(custom_ops.registered()))
    where = f'custom operator "{operator.name}"'
    for kind, refs, roles in (("inputs", msg.inputs, operator.inputs), ("outputs", msg.outputs, operator.outputs)):
        if len(refs) != len(roles):
            raise ctx.fail(f"{where} takes {len(roles)} {kind} ({', '.join(roles)}), not {len(refs)}")
    unknown = sorted(set(msg.attributes) - set(operator.attributes))
    if unknown:
        raise ctx.fail(f'{where} has no attribute "{unknown[0]}"; its attributes: '
                       + (", ".join(operator.attributes) or "none"))
    attributes = {**operator.attributes, **msg.attributes}
    inputs = tuple(ctx.engine_view(r, f"input {role}", pb.GPSIMD) for r, role in zip(msg.inputs, operator.inputs))
    outputs = tuple(ctx.engine_view(r, f"output {role}", pb.GPSIMD) for r, role in zip(msg.outputs, operator.outputs))
    try:
        expected = operator.output_shapes([v.shape for v in inputs], attributes)
    except custom_ops.CustomOpError as exc:
        raise ctx.fail(f"{where}: {exc}") from None
    for view, shape in zip(outputs, expected):
        if view.shape != tuple(shape):
            raise ctx.fail(f"{view} must be {fmt_shape(tuple(shape))} ({where} output shape)")
    return _CustomOp(reads=inputs, writes=outputs, flops=operator.flops([v.shape for v in inputs]),
                     operator=operator, inputs=inputs, outputs=outputs, attributes=attributes)


def _execute_custom_op(op: _CustomOp, env: Env) -> None:
    results = op.operator.compute([read_fp32(env, v) for v in op.inputs], op.attributes)
    for view, values in zip(op.outputs, results):
        store_fp32(env[view.name][view.index], values, view.dtype)


def _cost_custom_op(op: _CustomOp) -> cost_model.InstructionCost:
    cycles = cost_model.GPSIMD_SETUP_CYCLES + op.operator.cycles([v.shape for v in op.inputs])
    return cost_model.gpsimd_cost(cycles, tensors=len(op.inputs) + len(op.outputs))


# The instructions of this family (instruction.Opcode: validate, execute, cost).
OPCODES = (
    Opcode("custom_op", _validate_custom_op, _execute_custom_op, _cost_custom_op),
)
