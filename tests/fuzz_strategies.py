"""Hypothesis strategies for neurond's request messages: typed, but with every value a client could send.

Handles (tensor, model and session ids) cannot be known when examples are generated, so a strategy
may put a *handle marker* (`marker("own_tensor")`) in an id field: a uint64 near the top of the range
that the test resolves, just before sending, to the id of a real handle of that kind (its own tensor,
a freed one, another session's). Any other id is sent as generated.

Each request strategy draws, three times in four, from a *valid* strategy (requests the daemon must
accept: own handles, offsets inside the tensor, loadable programs) and otherwise from one that sends
anything a client could: so most examples reach the success paths and the oracles behind them, and
the rest still probe every check at the door.
"""

from __future__ import annotations

from hypothesis import strategies as st

from neurontools import dtypes
from neurontools._proto import neurond_pb2 as pb
from neurontools.kernels.examples import mlp_program

UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

# -- handle markers ---------------------------------------------------------------------------------

HANDLE_KINDS = (
    "own_tensor",        # float32[8] in HBM of the fuzz session's first core (32 bytes)
    "own_host_tensor",   # int8[4, 4] in host memory (16 bytes)
    "own_far_tensor",    # bfloat16[3, 5] in HBM of another device of the session (30 bytes)
    "freed_tensor",      # allocated by the fuzz session, then freed
    "foreign_tensor",    # the bystander session's tensor
    "own_model",         # a model the fuzz session loaded
    "unloaded_model",    # loaded, then unloaded
    "foreign_model",     # the bystander session's model
    "own_session",       # the fuzz session itself (EndSession)
    "own_twin_tensor",   # float32[8] in HBM of the session's second core: same size as own_tensor (copies)
)
# The bytes of each own tensor kind (what a valid offset and length stay within).
OWN_TENSOR_BYTES = {"own_tensor": 32, "own_host_tensor": 16, "own_far_tensor": 30, "own_twin_tensor": 32}
_MARKER_BASE = UINT64_MAX - 64


def marker(kind: str) -> int:
    return _MARKER_BASE + HANDLE_KINDS.index(kind)


def marker_kind(value: int) -> str | None:
    index = value - _MARKER_BASE
    return HANDLE_KINDS[index] if 0 <= index < len(HANDLE_KINDS) else None


def _repeated(field) -> bool:
    is_repeated = getattr(field, "is_repeated", None)  # protobuf >= 6; `label` is gone in 7
    return is_repeated if is_repeated is not None else field.label == field.LABEL_REPEATED


_ID_FIELDS = {"tensor_id", "src_tensor_id", "dst_tensor_id", "model_id", "session_id"}


def resolve_markers(message, resolve) -> None:
    """Replace every marker in the id fields of `message` (recursively) by resolve(kind)."""
    for field, value in message.ListFields():
        if _is_map(field):
            continue
        if field.type == field.TYPE_MESSAGE:
            items = value if _repeated(field) else [value]
            for item in items:
                resolve_markers(item, resolve)
        elif field.name in _ID_FIELDS and marker_kind(value):
            setattr(message, field.name, resolve(marker_kind(value)))


def handle_ids(*kinds: str) -> st.SearchStrategy[int]:
    """An id: a marker of one of `kinds`, or any uint64 (small ones hit real handles of the daemon)."""
    return st.one_of(st.sampled_from([marker(k) for k in kinds]), uint64s())


TENSOR_KINDS = ("own_tensor", "own_host_tensor", "own_far_tensor", "own_twin_tensor", "freed_tensor",
                "foreign_tensor")
MODEL_KINDS = ("own_model", "unloaded_model", "foreign_model")

# -- scalars ----------------------------------------------------------------------------------------


def uint32s() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(0, 40), st.sampled_from([127, 128, 129, 255, 256, 2**16, 2**31 - 1, 2**31,
                                                          UINT32_MAX - 1, UINT32_MAX]),
                     st.integers(0, UINT32_MAX))


def uint64s() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(0, 40), st.sampled_from([2**31, UINT32_MAX, 2**32, 2**53 + 1, 2**63 - 1, 2**63,
                                                          UINT64_MAX - 1, UINT64_MAX]),
                     st.integers(0, UINT64_MAX))


def enum_values(enum) -> st.SearchStrategy[int]:
    """Any int32: proto3 enums are open, so unknown and negative values travel as they are."""
    return st.one_of(st.sampled_from(list(enum.values())), st.integers(-3, 40), st.integers(INT32_MIN, INT32_MAX))


def mostly_valid(enum) -> st.SearchStrategy[int]:
    """Half the time a named, non-zero value of `enum`; otherwise any int32."""
    named = st.sampled_from([v for v in enum.values() if v])
    return st.one_of(named, enum_values(enum))


def texts(limit: int) -> st.SearchStrategy[str]:
    """Strings around a length limit of the daemon, and arbitrary unicode."""
    return st.one_of(st.text(max_size=12), st.sampled_from(["", " ", "\x00", "名前", "\u202e", "a\nb"]),
                     st.integers(limit - 1, limit + 2).map(lambda n: "x" * n), st.text(min_size=limit - 3,
                                                                                       max_size=limit + 3))


# -- OpenSessionRequest -------------------------------------------------------------------------------

def _core_part() -> st.SearchStrategy[str]:
    # Ranges of any width: "0-99999999999" once made neurond expand it before checking it.
    core = st.one_of(st.integers(0, 30), st.integers(0, 2**70))
    span = st.integers(-3, 30) | st.integers(-(2**40), 2**64)
    ranged = st.tuples(st.integers(0, 30) | st.integers(0, 2**64), span).map(
        lambda t: f"{t[0]}-{max(0, t[0] + t[1])}" if t[1] >= 0 else f"{t[0]}-{t[0] + t[1]}")
    return st.one_of(core.map(str), ranged)


def visible_cores() -> st.SearchStrategy[str]:
    garbage = ["", " ", ",", "-", "0-", "-1", "1--2", "0,,1", "3-0", "0-3,", " 0 - 3 ", "\t3", "0x1", "+1", "1e1",
               "1.0", "٣", "０", "²", "1²", "1_0", "0-3,5", "22-24", "23", "0-23", "4,5", "4,6", "5-4"]
    return st.one_of(
        st.just(""),
        st.sampled_from(garbage),
        st.lists(_core_part(), min_size=1, max_size=4).map(",".join),
        st.text(alphabet="0123456789-, ²٣", max_size=8),
        st.text(max_size=16),
    )


def chance(percent: int) -> st.SearchStrategy[bool]:
    """True in about `percent` % of examples. (st.one_of and st.sampled_from with repeated entries do
    not give such shares: inside a test, Hypothesis's choices drift towards the richer branches.)"""
    return st.integers(0, 99).map(lambda n: n < percent)


def _mostly(valid: st.SearchStrategy, anything: st.SearchStrategy) -> st.SearchStrategy:
    """Three examples in four from `valid`, the rest from `anything`."""
    return chance(75).flatmap(lambda is_valid: valid if is_valid else anything)


def _short_texts(limit: int) -> st.SearchStrategy[str]:
    return st.one_of(st.just(""), st.text(max_size=min(limit, 12)))


@st.composite
def _free_cores_request(draw, free_cores: list[int]) -> tuple[str, int]:
    """(visible_cores, num_cores) asking for a contiguous run of free cores, either way."""
    first = draw(st.sampled_from(free_cores))
    count = draw(st.integers(1, free_cores[-1] - first + 1))
    if draw(st.booleans()):
        return "", count
    text = str(first) if count == 1 else f"{first}-{first + count - 1}"
    return draw(st.sampled_from([text, f" {text} ", ",".join(map(str, range(first, first + count)))])), 0


def valid_open_session_requests(free_cores: list[int]) -> st.SearchStrategy[pb.OpenSessionRequest]:
    """Requests the daemon must grant: free contiguous cores (free_cores: a run with nothing taken in it)."""
    @st.composite
    def build(draw):
        visible, count = draw(_free_cores_request(free_cores))
        return pb.OpenSessionRequest(pid=draw(uint32s()), command=draw(_short_texts(4096)),
                                     runtime_version=draw(_short_texts(64)), tag=draw(_short_texts(256)),
                                     visible_cores=visible, num_cores=count,
                                     exec_timeout_ns=draw(st.one_of(st.just(0), uint64s())))
    return build()


def open_session_requests(free_cores: list[int]) -> st.SearchStrategy[pb.OpenSessionRequest]:
    return _mostly(valid_open_session_requests(free_cores), _any_open_session_requests())


def _any_open_session_requests() -> st.SearchStrategy[pb.OpenSessionRequest]:
    return st.builds(
        pb.OpenSessionRequest,
        pid=uint32s(), command=texts(4096), runtime_version=texts(64), tag=texts(256),
        visible_cores=visible_cores(),
        num_cores=st.one_of(st.integers(0, 30), uint32s()),
        exec_timeout_ns=st.one_of(st.just(0), uint64s()),
    )


# -- Watch ------------------------------------------------------------------------------------------

def watch_requests() -> st.SearchStrategy[pb.WatchRequest]:
    valid = st.builds(pb.WatchRequest, interval_ns=st.one_of(st.just(0), st.integers(10_000_000, 500_000_000)),
                      queue_depth=st.integers(0, 64))
    anything = st.builds(pb.WatchRequest,
                         interval_ns=st.one_of(st.integers(0, 20_000_000), st.sampled_from([9_999_999, 10_000_000]),
                                               uint64s()),
                         queue_depth=st.one_of(st.integers(0, 70), uint32s()))
    return _mostly(valid, anything)


# -- tensors ----------------------------------------------------------------------------------------

def core_ids(session_cores: list[int]) -> st.SearchStrategy[int]:
    """A core of the session, the bystander's, just out of range, or anything."""
    return st.one_of(st.sampled_from(session_cores), st.sampled_from([4, 22, 23, 24, 25, UINT32_MAX]), uint32s())


def dims() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(1, 8), st.sampled_from([0, 1, 1024, 2**20, 2**31, UINT32_MAX]), uint32s())


def allocate_tensor_requests(session_cores: list[int]) -> st.SearchStrategy[pb.AllocateTensorRequest]:
    valid = st.builds(  # at most 64**3 elements of 4 bytes: 1 MiB, small enough to write and read back
        pb.AllocateTensorRequest, name=_short_texts(256), shape=st.lists(st.integers(1, 64), min_size=1, max_size=3),
        dtype=st.sampled_from(sorted(dtypes.NAMES)), placement=st.sampled_from([pb.DEVICE, pb.HOST]),
        core_id=st.sampled_from(session_cores))
    shape = st.one_of(st.lists(st.integers(1, 64), min_size=1, max_size=4), st.lists(dims(), max_size=10))
    anything = st.builds(
        pb.AllocateTensorRequest,
        name=st.one_of(st.just(""), texts(256)), shape=shape, dtype=mostly_valid(pb.DType),
        placement=mostly_valid(pb.Placement), core_id=st.one_of(st.sampled_from(session_cores), core_ids(session_cores)),
    )
    return _mostly(valid, anything)


def _offsets() -> st.SearchStrategy[int]:
    # own tensors hold 16 to 32 bytes: 0..70 covers inside, the end and just past it
    return st.one_of(st.integers(0, 70), uint64s())


@st.composite
def _inside(draw, size: int) -> tuple[int, int]:
    """(offset, length) of a byte range inside a tensor of `size` bytes (possibly empty)."""
    offset = draw(st.integers(0, size))
    return offset, draw(st.integers(0, size - offset))


@st.composite
def valid_write_chunk_streams(draw) -> list[pb.WriteTensorChunk]:
    """A stream to one own tensor: every chunk inside it, later chunks naming it or leaving the id 0."""
    kind = draw(st.sampled_from(sorted(OWN_TENSOR_BYTES)))
    chunks = []
    for index in range(draw(st.integers(1, 5))):
        offset, length = draw(_inside(OWN_TENSOR_BYTES[kind]))
        tensor_id = marker(kind) if index == 0 or draw(st.booleans()) else 0
        chunks.append(pb.WriteTensorChunk(tensor_id=tensor_id, offset=offset,
                                          data=draw(st.binary(min_size=length, max_size=length))))
    return chunks


def write_chunk_streams() -> st.SearchStrategy[list[pb.WriteTensorChunk]]:
    return _mostly(valid_write_chunk_streams(), _any_write_chunk_streams())


def _any_write_chunk_streams() -> st.SearchStrategy[list[pb.WriteTensorChunk]]:
    chunk = st.builds(
        pb.WriteTensorChunk,
        tensor_id=st.one_of(st.just(0), handle_ids(*TENSOR_KINDS)),
        offset=_offsets(),
        data=st.one_of(st.binary(max_size=40), st.binary(max_size=40),
                       st.sampled_from([33, 4096, 2**21 + 1]).map(lambda n: b"\xa5" * n)),
    )
    return st.lists(chunk, max_size=5)


@st.composite
def valid_read_tensor_requests(draw) -> pb.ReadTensorRequest:
    """A range inside an own tensor (length 0: to the end), in chunks the daemon allows."""
    kind = draw(st.sampled_from(sorted(OWN_TENSOR_BYTES)))
    offset, length = draw(_inside(OWN_TENSOR_BYTES[kind]))
    chunk_bytes = draw(st.one_of(st.just(0), st.integers(1, 40), st.just(2**21)))
    return pb.ReadTensorRequest(tensor_id=marker(kind), offset=offset, length=length, chunk_bytes=chunk_bytes)


def read_tensor_requests() -> st.SearchStrategy[pb.ReadTensorRequest]:
    return _mostly(valid_read_tensor_requests(), _any_read_tensor_requests())


def _any_read_tensor_requests() -> st.SearchStrategy[pb.ReadTensorRequest]:
    return st.builds(
        pb.ReadTensorRequest,
        tensor_id=handle_ids(*TENSOR_KINDS), offset=_offsets(), length=_offsets(),
        chunk_bytes=st.one_of(st.integers(0, 40), st.sampled_from([2**21 - 1, 2**21, 2**21 + 1, UINT32_MAX]),
                              uint32s()),
    )


def copy_or_free_requests() -> st.SearchStrategy[pb.CopyTensorRequest | pb.FreeTensorRequest]:
    # Valid while the tensors live: copies between the two 32-byte tensors (or a tensor onto itself),
    # frees of own tensors; a sequence of them may free a tensor a later request names.
    same_size = st.sampled_from([marker("own_tensor"), marker("own_twin_tensor")])
    own = st.sampled_from([marker(kind) for kind in OWN_TENSOR_BYTES])
    valid = st.one_of(st.builds(pb.CopyTensorRequest, src_tensor_id=same_size, dst_tensor_id=same_size),
                      own.map(lambda tensor: pb.CopyTensorRequest(src_tensor_id=tensor, dst_tensor_id=tensor)),
                      st.builds(pb.FreeTensorRequest, tensor_id=own))
    ids = handle_ids(*TENSOR_KINDS, *MODEL_KINDS)
    anything = st.one_of(st.builds(pb.CopyTensorRequest, src_tensor_id=ids, dst_tensor_id=ids),
                         st.builds(pb.FreeTensorRequest, tensor_id=ids))
    return _mostly(valid, anything)


# -- programs and models ------------------------------------------------------------------------------

NAME_POOL = ["x", "y", "w", "t0", "t1", "acc", "out", "xT", "rowmax", "x_sb", "w_sb", "y_sb", "max_sb", ""]


def _names() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(NAME_POOL), st.text(max_size=4), st.just("n" * 300))


def _small_or_huge() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(0, 140), st.sampled_from([255, 256, 512, 513, 2048, 2**16 + 1, UINT32_MAX]))


def _shapes(max_rank: int = 5) -> st.SearchStrategy[list[int]]:
    dim = st.one_of(st.integers(1, 140), st.sampled_from([0, 256, 512, 513, 2**16, UINT32_MAX]))
    return st.lists(dim, max_size=max_rank)


def _refs() -> st.SearchStrategy[pb.Ref]:
    piece = st.builds(pb.Slice, start=_small_or_huge(), stop=_small_or_huge())
    return st.builds(pb.Ref, name=_names(), slices=st.lists(piece, max_size=4))


def _is_map(field) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


class _EnumProxy:
    """An enum descriptor with the values() that enum_values() reads."""

    def __init__(self, descriptor) -> None:
        self._values = [v.number for v in descriptor.values]

    def values(self) -> list[int]:
        return self._values


def _scalars(field) -> st.SearchStrategy:
    """Values for a scalar field of any type, biased to what the daemon's limits care about."""
    t = field.type
    if t == field.TYPE_ENUM:
        return enum_values(_EnumProxy(field.enum_type))
    if t == field.TYPE_STRING:
        return _names()
    if t == field.TYPE_BYTES:
        return st.binary(max_size=40)
    if t == field.TYPE_BOOL:
        return st.booleans()
    if t == field.TYPE_FLOAT:
        return st.floats(width=32)
    if t == field.TYPE_DOUBLE:
        return st.floats()
    if t in (field.TYPE_INT32, field.TYPE_SINT32, field.TYPE_SFIXED32):
        return st.one_of(st.integers(-3, 140), st.integers(INT32_MIN, INT32_MAX))
    if t in (field.TYPE_INT64, field.TYPE_SINT64, field.TYPE_SFIXED64):
        return st.one_of(st.integers(-3, 140), st.integers(-(2**63), 2**63 - 1))
    if t in (field.TYPE_UINT64, field.TYPE_FIXED64):
        return handle_ids(*TENSOR_KINDS) if field.name == "tensor_id" else uint64s()
    return _small_or_huge()


def _fill(draw, message, depth: int = 0) -> None:
    """Set a random subset of `message`'s fields (not its oneofs) to random values, in place."""
    for field in message.DESCRIPTOR.fields:
        if field.containing_oneof is not None or draw(st.integers(0, 3)) == 0:
            continue
        value = getattr(message, field.name)
        if _is_map(field):
            entry = field.message_type.fields_by_name
            value.update(draw(st.dictionaries(_scalars(entry["key"]), _scalars(entry["value"]), max_size=3)))
        elif field.type == field.TYPE_MESSAGE and field.message_type.name == "Ref":
            if _repeated(field):
                value.extend(draw(st.lists(_refs(), max_size=3)))
            else:
                value.CopyFrom(draw(_refs()))
        elif field.type == field.TYPE_MESSAGE:
            if depth >= 3:
                continue
            if _repeated(field):
                for _ in range(draw(st.integers(0, 3))):
                    _fill(draw, value.add(), depth + 1)
            else:
                value.SetInParent()
                _fill(draw, value, depth + 1)
        elif _repeated(field):
            value.extend(draw(st.lists(_scalars(field), max_size=4)))
        else:
            setattr(message, field.name, draw(_scalars(field)))


_OPERATIONS = [f.name for f in pb.Instruction.DESCRIPTOR.oneofs_by_name["op"].fields]


@st.composite
def _instructions(draw) -> pb.Instruction:
    """Any operation of the instruction set (read from the proto, so new ones are fuzzed too), or none."""
    instruction = pb.Instruction()
    operation = draw(st.sampled_from([*_OPERATIONS, None]))
    if operation is not None:
        op = getattr(instruction, operation)
        op.SetInParent()
        _fill(draw, op)
    return instruction


def random_programs() -> st.SearchStrategy[pb.Program]:
    """Programs built from scratch: declarations and instructions over a small pool of names."""
    dtype = st.one_of(st.sampled_from([pb.FLOAT32, pb.BFLOAT16, pb.INT8]), enum_values(pb.DType))
    parameter = st.builds(pb.Parameter, name=_names(), kind=enum_values(pb.ParameterKind), shape=_shapes(),
                          dtype=dtype)
    constant = st.builds(
        pb.Constant, name=_names(), shape=_shapes(), dtype=dtype,
        data=st.one_of(st.just(b""), st.binary(max_size=64)),
        tensor_id=st.one_of(st.just(0), handle_ids(*TENSOR_KINDS)))
    tile = st.builds(pb.Tile, name=_names(), buffer=enum_values(pb.Buffer), shape=_shapes(3), dtype=dtype)
    return st.builds(pb.Program, parameters=st.lists(parameter, max_size=3), constants=st.lists(constant, max_size=2),
                     tiles=st.lists(tile, max_size=4), instructions=st.lists(_instructions(), max_size=4))


def _ref(name: str, *slices: tuple[int, int]) -> pb.Ref:
    return pb.Ref(name=name, slices=[pb.Slice(start=a, stop=b) for a, b in slices])


def elementwise_program() -> pb.Program:
    """A small valid program on the DMA, Scalar and Vector engines: y = relu(2x) + x, r = the row maxima of y.
    The constant c (no data) is unused: it is there for mutations to point operands at."""
    f32 = pb.FLOAT32
    program = pb.Program(
        parameters=[pb.Parameter(name="x", kind=pb.INPUT, shape=[64, 32], dtype=f32),
                    pb.Parameter(name="y", kind=pb.OUTPUT, shape=[64, 32], dtype=pb.BFLOAT16),
                    pb.Parameter(name="r", kind=pb.OUTPUT, shape=[64, 1], dtype=f32)],
        constants=[pb.Constant(name="c", shape=[64, 32], dtype=f32)],
        tiles=[pb.Tile(name="t0", buffer=pb.SBUF, shape=[64, 32], dtype=f32),
               pb.Tile(name="t1", buffer=pb.SBUF, shape=[64, 32], dtype=f32),
               pb.Tile(name="t2", buffer=pb.SBUF, shape=[64, 1], dtype=f32)])
    ops = program.instructions
    ops.add(dma_copy=pb.DmaCopy(dst=_ref("t0"), src=_ref("x")))
    ops.add(activation=pb.Activation(dst=_ref("t1"), src=_ref("t0"), function=pb.RELU, scale=2.0))
    ops.add(tensor_tensor=pb.TensorTensor(dst=_ref("t1"), a=_ref("t1"), b=_ref("t0"), op=pb.ADD))
    ops.add(tensor_reduce=pb.TensorReduce(dst=_ref("t2"), src=_ref("t1", (0, 64), (0, 32)), op=pb.MAXIMUM))
    ops.add(dma_copy=pb.DmaCopy(dst=_ref("y"), src=_ref("t1")))
    ops.add(dma_copy=pb.DmaCopy(dst=_ref("r"), src=_ref("t2")))
    return program


def matmul_program() -> pb.Program:
    """out[32, 64] = xT[16, 32].T @ w[16, 64] with the weights a constant with inline data."""
    f32 = pb.FLOAT32
    program = pb.Program(
        parameters=[pb.Parameter(name="xT", kind=pb.INPUT, shape=[16, 32], dtype=f32),
                    pb.Parameter(name="out", kind=pb.OUTPUT, shape=[32, 64], dtype=f32)],
        constants=[pb.Constant(name="w", shape=[16, 64], dtype=pb.BFLOAT16, data=b"\x80\x3f" * (16 * 64))],
        tiles=[pb.Tile(name="x_sb", buffer=pb.SBUF, shape=[16, 32], dtype=pb.BFLOAT16),
               pb.Tile(name="w_sb", buffer=pb.SBUF, shape=[16, 64], dtype=pb.BFLOAT16),
               pb.Tile(name="acc", buffer=pb.PSUM, shape=[32, 64], dtype=f32),
               pb.Tile(name="y_sb", buffer=pb.SBUF, shape=[32, 64], dtype=f32)])
    ops = program.instructions
    ops.add(dma_copy=pb.DmaCopy(dst=_ref("x_sb"), src=_ref("xT")))
    ops.add(dma_copy=pb.DmaCopy(dst=_ref("w_sb"), src=_ref("w")))
    ops.add(matmul=pb.Matmul(dst=_ref("acc"), stationary=_ref("x_sb"), moving=_ref("w_sb")))
    ops.add(matmul=pb.Matmul(dst=_ref("acc"), stationary=_ref("x_sb"), moving=_ref("w_sb"), accumulate=True))
    ops.add(activation=pb.Activation(dst=_ref("y_sb"), src=_ref("acc"), function=pb.GELU_APPRX_TANH))
    ops.add(dma_copy=pb.DmaCopy(dst=_ref("out"), src=_ref("y_sb")))
    return program


TEMPLATES = (elementwise_program, matmul_program, mlp_program)


def _leaves(message, path=()) -> list[tuple]:
    """Every scalar slot of `message` (set or not, repeated entries included) as a path of steps."""
    out = []
    for field in message.DESCRIPTOR.fields:
        if _is_map(field):
            continue
        if field.type == field.TYPE_MESSAGE:
            if _repeated(field):
                for i, item in enumerate(getattr(message, field.name)):
                    out.extend(_leaves(item, (*path, (field.name, i))))
            elif message.HasField(field.name) or field.containing_oneof is None:
                out.extend(_leaves(getattr(message, field.name), (*path, (field.name, None))))
        elif _repeated(field):
            out.extend((*path, (field.name, i)) for i in range(len(getattr(message, field.name))))
        else:
            out.append((*path, (field.name, None)))
    return out


def _repeated_containers(message, path=()) -> list[tuple]:
    out = []
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if _is_map(field):
            continue
        if _repeated(field):
            out.append((*path, (field.name, None)))
            if field.type == field.TYPE_MESSAGE:
                for i, item in enumerate(value):
                    out.extend(_repeated_containers(item, (*path, (field.name, i))))
        elif field.type == field.TYPE_MESSAGE and message.HasField(field.name):
            out.extend(_repeated_containers(value, (*path, (field.name, None))))
    return out


def _walk(message, path):
    for name, index in path:
        message = getattr(message, name) if index is None else getattr(message, name)[index]
    return message


def _field_values(field) -> st.SearchStrategy:
    if field.name in ("start", "stop", "shape"):
        return _small_or_huge()
    return _scalars(field)


@st.composite
def mutated_programs(draw) -> pb.Program:
    """A valid program with up to three random edits: a scalar set to an odd value, an element of a
    repeated field dropped or duplicated. Most stay close enough to valid to reach the deep checks."""
    program = draw(st.sampled_from(TEMPLATES))()
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.integers(0, 3)) == 0:
            path = draw(st.sampled_from(_repeated_containers(program)))
            parent = _walk(program, path[:-1])
            items = getattr(parent, path[-1][0])
            if not len(items):
                continue
            i = draw(st.integers(0, len(items) - 1))
            if draw(st.booleans()):
                del items[i]
            elif hasattr(items, "add"):
                items.add().CopyFrom(items[i])
            else:
                items.append(items[i])
        else:
            path = draw(st.sampled_from(_leaves(program)))
            parent = _walk(program, path[:-1])
            name, index = path[-1]
            field = parent.DESCRIPTOR.fields_by_name[name]
            value = draw(_field_values(field))
            if index is None:
                setattr(parent, name, value)
            else:
                getattr(parent, name)[index] = value
    return program


def programs() -> st.SearchStrategy[pb.Program]:
    return st.one_of(mutated_programs(), mutated_programs(), random_programs())


def valid_load_model_requests(session_cores: list[int]) -> st.SearchStrategy[pb.LoadModelRequest]:
    """Unchanged templates on one or several distinct cores of the session, with modest memory asks."""
    @st.composite
    def build(draw):
        cores = draw(st.lists(st.sampled_from(session_cores), min_size=1, max_size=3, unique=True))
        subgraphs = [pb.SubgraphProgram(core_id=core, program=draw(st.sampled_from(TEMPLATES))()) for core in cores]
        sizes = st.one_of(st.just(0), st.integers(1, 1 << 20))
        return pb.LoadModelRequest(name=draw(_short_texts(256)), subgraphs=subgraphs,
                                   scratchpad_bytes=draw(sizes), runtime_memory_bytes=draw(sizes))
    return build()


def load_model_requests(session_cores: list[int]) -> st.SearchStrategy[pb.LoadModelRequest]:
    return _mostly(valid_load_model_requests(session_cores), _any_load_model_requests(session_cores))


def _any_load_model_requests(session_cores: list[int]) -> st.SearchStrategy[pb.LoadModelRequest]:
    near = st.sampled_from(session_cores[:1]).map(lambda c: [c])
    cores = st.one_of(near, near, st.lists(core_ids(session_cores), max_size=3))
    sizes = st.one_of(st.just(0), st.just(0), st.integers(1, 2**30), uint64s())

    @st.composite
    def build(draw):
        subgraphs = [pb.SubgraphProgram(core_id=core, program=draw(programs())) for core in draw(cores)]
        return pb.LoadModelRequest(name=draw(texts(256)), subgraphs=subgraphs, scratchpad_bytes=draw(sizes),
                                   runtime_memory_bytes=draw(sizes))
    return build()


# -- raw bytes ----------------------------------------------------------------------------------------

def corrupt(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    """Overwrite or truncate a serialized message: each edit (position, byte), byte -1 truncates there."""
    out = bytearray(data)
    for position, value in edits:
        if not out:
            break
        position %= len(out)
        if value < 0:
            del out[position:]
        else:
            out[position] = value
    return bytes(out)

