"""The kernel builder (neurontools.kernels.builder): declarations, slicing, capacity, serialization."""

from __future__ import annotations

import numpy as np
import pytest

from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.isa.program import compile_program
from neurontools.kernels import Kernel, KernelError


def test_slicing_gives_refs_with_slices_for_the_leading_dimensions():
    k = Kernel()
    x = k.input("x", (256, 1024), "bfloat16")
    assert x.ref() == pb.Ref(name="x")
    assert x[0:128, 256:512].ref() == pb.Ref(name="x", slices=[pb.Slice(start=0, stop=128),
                                                                pb.Slice(start=256, stop=512)])
    assert x[128:].ref() == pb.Ref(name="x", slices=[pb.Slice(start=128, stop=256)])
    assert x[:, :].ref() == pb.Ref(name="x")                      # whole dimensions need no slice
    assert x[:, -2].ref().slices[1] == pb.Slice(start=1022, stop=1023)
    view = x[100:200][10:20, 512:]                                # views slice relative to themselves
    assert view.bounds == ((110, 120), (512, 1024)) and view.shape == (10, 512)


@pytest.mark.parametrize("key, message", [
    ((slice(0, 8, 2),), "step 2"),
    ((0, 0, 0), "3 indices for a view of rank 2"),
    ((300,), "index 300 out of range"),
    ((slice(5, 5),), r"empty range \[5:5\]"),
    (("a",), "must be an int or a slice"),
])
def test_bad_indexing_is_refused(key, message):
    x = Kernel().input("x", (256, 8), "float32")
    with pytest.raises(KernelError, match=message):
        x[key if len(key) > 1 else key[0]]


def test_sbuf_overflow_names_the_tile_and_the_budget():
    k = Kernel()
    k.sbuf((128, 32768), "float32", name="big")        # 128 KiB per partition
    k.sbuf((128, 16384), "bfloat16", name="half")      # 32 KiB
    assert k.sbuf_free_bytes == 32 * 1024
    with pytest.raises(KernelError) as info:
        k.sbuf((128, 16384), "float32", name="third")  # 64 KiB
    message = str(info.value)
    for fragment in ("'third'", "[128, 16384] float32", "needs 64 KiB per partition", "only 32 of 192 KiB",
                     "big 128 KiB", "half 32 KiB"):
        assert fragment in message, message


def test_psum_tiles_pack_into_eight_banks():
    k = Kernel()
    for _ in range(8):
        k.psum((128, 512))
    with pytest.raises(KernelError, match="would make the PSUM tiles need 9 banks; a NeuronCore-v2 has 8"):
        k.psum((128, 128))
    small = Kernel()
    for _ in range(32):                                  # four [128, 128] float32 tiles share a 2 KiB bank
        small.psum((128, 128))
    assert small.psum_banks_used == 8
    with pytest.raises(KernelError, match="fits one 2 KiB bank"):
        Kernel().psum((128, 1024))


def test_names_are_one_namespace_and_tiles_are_named_automatically():
    k = Kernel()
    k.input("sbuf0", (4,), "float32")
    tile = k.sbuf((4, 4), "float32")
    assert tile.name == "sbuf1"
    k.input("x", (4,), "float32")
    with pytest.raises(KernelError, match="'x' is already declared"):
        k.output("x", (4,), "float32")
    with pytest.raises(KernelError, match=r"must be \[P, F\] with 1 <= P <= 128"):
        k.sbuf((256, 4), "float32")


def test_constants_carry_their_data_in_the_declared_dtype():
    k = Kernel()
    w = k.constant("w", np.arange(6, dtype=np.float64).reshape(2, 3), dtype="bfloat16")
    empty = k.constant("e", shape=(4, 4), dtype="int8")
    program = k.program()
    assert (w.shape, w.dtype, empty.dtype) == ((2, 3), pb.BFLOAT16, pb.INT8)
    assert len(program.constants[0].data) == 12 and program.constants[1].data == b""
    with pytest.raises(KernelError, match="give data, or shape and dtype"):
        k.constant("z")


def test_unknown_enum_names_list_the_choices():
    k = Kernel()
    t = k.sbuf((4, 4), "float32")
    with pytest.raises(KernelError, match="unknown ALU op 'plus'; use one of: add, subtract"):
        k.tensor_tensor(t, t, t, "plus")
    with pytest.raises(KernelError, match="unknown engine 'cpu'"):
        k.memset(t, 0, engine="cpu")


def test_a_built_kernel_compiles_and_the_program_is_a_copy():
    k = Kernel()
    x, y = k.input("x", (128, 64), "float32"), k.output("y", (128, 64), "float32")
    t = k.sbuf((128, 64), "float32")
    k.load(t, x)
    k.activation(t, t, "relu")
    k.store(y, t)
    program = k.program()
    k.memset(t, 0)
    assert len(program.instructions) == 3 and k.instruction_count == 4
    assert compile_program(program).instruction_count == 3
