"""The instruction set of one NeuronCore-v2 (the NKI ISA, ref §3.4): validation, execution and cost.

One module per instruction family, each with its rules (validate), numpy semantics (execute) and
cost side by side:

  dma.py          dma_copy                                   (DMA queues)
  matmul.py       matmul, transpose                          (Tensor engine)
  activation.py   activation                                 (Scalar engine; functions in activation_functions.py)
  elementwise.py  tensor_scalar, tensor_tensor, memset, tensor_copy   (Vector / GpSimd)
  reduction.py    tensor_reduce, bn_stats, bn_aggr, tensor_partition_reduce
  affine.py       iota, affine_select                        (GpSimd index patterns)
  custom.py       custom_op                                  (GpSimd; operators in custom_ops.py)
  collective.py   all_reduce, all_gather, reduce_scatter, send_recv, permute

Shared pieces: limits.py (hardware and format limits), operands.py (declarations, views, validation
context), instruction.py (the instruction base, opcode entries, numeric helpers), alu.py (ALU ops),
cost_model.py (every timing constant and the per-core schedule), matmul_fusion.py (execution-only
fusion of matmul chains) and program.py (compile_program, the compiled program, its run and timeline).
"""
