"""Collectives without a daemon: per-rank validation, the group rules, matching, the algorithms' link
traffic and time, the joint schedule of the ranks, and the rendezvous of their threads."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.isa import cost_model as cm
from neurontools.daemon.device import topology as topo
from neurontools.daemon.collectives.rendezvous import CollectiveFailure, ExecutionCollectives
from neurontools.daemon.collectives.planning import (CollectiveError, Links, ModelCollectives, algorithm, check_group,
                                           event_cost, plan_model)
from neurontools.daemon.device.faults import FaultTable
from neurontools.daemon.isa.program import ProgramError, compile_program
from neurontools.daemon.device.telemetry import Telemetry
from neurontools.kernels import library
from neurontools.kernels.builder import Kernel, KernelError

GIB = 1 << 30
HOP_NS = cm.COLLECTIVE_HOP_LATENCY_NS


def plan(instance: str, programs: dict[int, pb.Program]) -> ModelCollectives:
    return plan_model(topo.lookup(instance), [(core, compile_program(p)) for core, p in programs.items()])


def collective_programs(cores, kind: str = "all_reduce", shape=(4, 8), dtype="float32", **options):
    """{core: program} with one collective of `kind` from input "x" into output "y"; all_gather and
    reduce_scatter size "y" for len(cores) ranks along axis 0."""
    cores = list(cores)
    programs = {}
    for core in cores:
        k = Kernel()
        y_shape = {"all_gather": (shape[0] * len(cores), *shape[1:]),
                   "reduce_scatter": (shape[0] // len(cores), *shape[1:])}.get(kind, shape)
        x, y = k.input("x", shape, dtype), k.output("y", y_shape, dtype)
        getattr(library, kind)(k, y, x, **options)
        programs[core] = k.program()
    return programs


def link_id(machine: topo.MachineSpec, a: int, b: int) -> int:
    return machine.links().index((min(a, b), max(a, b)))


# -- one rank's instruction --------------------------------------------------------------------------

@pytest.mark.parametrize("edit, message", [
    (lambda k, x, y, t: library.all_reduce(k, t, x), 'dst SBUF tile "t" .*collectives move HBM tensors'),
    (lambda k, x, y, t: library.all_reduce(k, x, y), 'dst input parameter "x".*OUTPUT parameter'),
    (lambda k, x, y, t: k._emit(all_reduce=pb.AllReduce(dst=y.ref(), src=x.ref(), op=pb.MULTIPLY)),
     "op MULTIPLY cannot reduce across ranks; use one of: ADD, MAXIMUM, MINIMUM"),
    (lambda k, x, y, t: library.all_reduce(k, k.output("i", (4, 8), "int32"), k.input("j", (4, 8), "int32")),
     "int32; collective reductions accumulate in FP32 and take float tensors"),
    (lambda k, x, y, t: library.all_gather(k, k.output("b", (8, 8), "bfloat16"), x),
     "is bfloat16 and .* is float32; collectives do not cast"),
    (lambda k, x, y, t: library.all_gather(k, k.output("g", (8, 9), "float32"), x),
     r"must be .* repeated along axis 0, once per rank"),
    (lambda k, x, y, t: library.permute(k, y, x, shift=0), "shift 0 moves nothing"),
    (lambda k, x, y, t: library.send_recv(k, src=y, send_to=1, dst=y, recv_from=1),
     "an exchange receives into a buffer of its own"),
    (lambda k, x, y, t: library.send_recv(k, src=x, dst=y, recv_from=1), "src and send_to go together"),
    (lambda k, x, y, t: library.all_reduce(k, y, x, group=[0, 1, 0]), "group lists NeuronCore 0 twice"),
])
def test_an_instruction_breaking_a_collective_rule_names_it(edit, message):
    k = Kernel()
    x, y, t = k.input("x", (4, 8), "float32"), k.output("y", (4, 8), "float32"), k.sbuf((4, 8), "float32", name="t")
    edit(k, x, y, t)
    with pytest.raises(ProgramError, match=message):
        compile_program(k.program())


def test_the_library_names_the_reductions():
    k = Kernel()
    with pytest.raises(KernelError, match="reduction 'multiply': use one of add, maximum, minimum"):
        library.all_reduce(k, k.output("y", (4,), "float32"), k.input("x", (4,), "float32"), "multiply")


def test_a_program_with_collectives_runs_only_as_a_rank():
    program = compile_program(collective_programs([0])[0])
    with pytest.raises(ValueError, match="runs as a rank"):
        program.run({"x": None, "y": np.zeros((4, 8), np.float32)}, timing_only=False)


# -- group rules (ref §1.2) ----------------------------------------------------------------------------

@pytest.mark.parametrize("instance, cores, message", [
    ("inf2.48xlarge", (0, 1, 2), "has 3 ranks; on Inferentia2 the Neuron runtime runs collectives over an even "
                                 "number of ranks on consecutive Neuron devices"),
    ("inf2.48xlarge", (0, 1, 4, 5), "spans Neuron devices 0 and 2, which are not consecutive \\(device 1 has no "
                                    "rank\\)"),
    ("inf2.24xlarge", (10, 11, 0, 1), "spans Neuron devices 0 and 5, which are not consecutive"),  # a chain
    ("trn1.32xlarge", (0, 1, 2, 3), "has 4 ranks; trn1.32xlarge runs collectives over sets of 2, 8 or 32 ranks"),
    ("trn1.2xlarge", (0,), "has 1 rank; trn1.2xlarge runs collectives over sets of 2 ranks"),
])
def test_group_rules_of_the_neuron_runtime(instance, cores, message):
    with pytest.raises(CollectiveError, match=message):
        check_group(topo.lookup(instance), cores)


@pytest.mark.parametrize("instance, cores", [
    ("inf2.48xlarge", (22, 23, 0, 1)),      # across the ring's wrap-around: devices 11 and 0 are linked
    ("inf2.48xlarge", (1, 2)),              # one core on each of two devices
    ("inf2.48xlarge", tuple(range(24))),
    ("inf2.24xlarge", tuple(range(2, 12))),
    ("inf2.xlarge", (0, 1)),
    ("trn1.32xlarge", tuple(range(8))),
    ("trn1.2xlarge", (0, 1)),
])
def test_groups_the_runtime_accepts(instance, cores):
    check_group(topo.lookup(instance), cores)


@pytest.mark.parametrize("programs, message", [
    (lambda: {0: collective_programs([0], group=[0, 4])[0], 1: collective_programs([1])[1]},
     "names NeuronCore 4, which runs no subgraph of this model"),
    (lambda: {0: collective_programs([0], group=[1, 2])[0], 1: collective_programs([1])[1],
              2: collective_programs([2])[2]}, "does not include NeuronCore 0"),
    (lambda: {0: collective_programs([0, 1])[0], 1: Kernel().program()},
     "collective 1 over NeuronCores 0, 1, but NeuronCore 1 issues 0 collectives over that group"),
    (lambda: {**collective_programs([0]), 1: collective_programs([1], shape=(4, 16))[1]},
     r"src is float32\[4, 16\] on NeuronCore 1 .* but float32\[4, 8\] on NeuronCore 0"),
    (lambda: {**collective_programs([0]), 1: collective_programs([1], dtype="bfloat16")[1]},
     r"src is bfloat16\[4, 8\] on NeuronCore 1"),
    (lambda: {**collective_programs([0]), 1: collective_programs([1], op="maximum")[1]},
     "reduction is MAXIMUM on NeuronCore 1"),
    (lambda: {**collective_programs([0]), 1: collective_programs([1], kind="permute")[1]},
     "operation is permute on NeuronCore 1"),
    (lambda: collective_programs([0, 1, 2, 3], kind="all_gather", shape=(2, 8)) | {
        3: collective_programs([0, 1], kind="all_gather", shape=(4, 4))[0]},
     r"src is float32\[4, 4\] on NeuronCore 3"),
    (lambda: {c: collective_programs(range(4), kind="all_gather")[c] for c in (0, 1)},  # sized for 4 ranks
     r"float32\[16, 8\] must hold 2 blocks of float32\[4, 8\] along axis 0"),
    (lambda: collective_programs([0, 1], kind="permute", shift=2), "shift 2 is a multiple of the 2 ranks"),
])
def test_the_ranks_must_match(programs, message):
    with pytest.raises(CollectiveError, match=message):
        plan("inf2.48xlarge", programs())


def _send_recv_program(**halves) -> pb.Program:
    k = Kernel()
    x, y = k.input("x", (4, 8), "float32"), k.output("y", (4, 8), "float32")
    library.send_recv(k, **{name: (x if name == "src" else y) if name in ("src", "dst") else value
                            for name, value in halves.items()})
    return k.program()


def test_a_send_needs_its_receive():
    programs = {0: _send_recv_program(src=1, send_to=1), 1: Kernel().program()}
    with pytest.raises(CollectiveError, match="has no matching send_recv on NeuronCore 1 \\(a receive from "
                                              "NeuronCore 0\\)"):
        plan("inf2.48xlarge", programs)


def test_collectives_that_would_wait_for_each_other_for_ever_are_refused():
    def ranks(*groups):
        k = Kernel()
        x, y = k.input("x", (4, 8), "float32"), k.output("y", (4, 8), "float32")
        for group in groups:
            library.all_reduce(k, y, x, group=group)
        return k.program()
    pair, all4 = [0, 1], [0, 1, 2, 3]
    programs = {0: ranks(pair, all4), 1: ranks(all4, pair), 2: ranks(all4), 3: ranks(all4)}
    with pytest.raises(CollectiveError, match=r"cannot complete: NeuronCore 0 waits at all_reduce \(instruction 0\) "
                                              r"for NeuronCore 1; NeuronCore 1 waits at all_reduce \(instruction 0\) "
                                              r"for NeuronCore 0"):
        plan("inf2.48xlarge", programs)
    # Receiving first on both sides waits for ever; one exchange (both halves in one send_recv) does not.
    both_receive_first = {0: _recv_then_send(1), 1: _recv_then_send(0)}
    with pytest.raises(CollectiveError, match="cannot complete"):
        plan("inf2.48xlarge", both_receive_first)
    exchange = {0: _send_recv_program(src=1, send_to=1, dst=1, recv_from=1),
                1: _send_recv_program(src=0, send_to=0, dst=0, recv_from=0)}
    assert len(plan("inf2.48xlarge", exchange).events) == 2


def _recv_then_send(peer: int) -> pb.Program:
    k = Kernel()
    x, y = k.input("x", (4, 8), "float32"), k.output("y", (4, 8), "float32")
    library.send_recv(k, dst=y, recv_from=peer)
    library.send_recv(k, src=x, send_to=peer)
    return k.program()


# -- link traffic: the bytes each link carries in each direction ----------------------------------------

def test_ring_all_reduce_on_the_full_inf2_48xlarge_ring_uses_both_directions_of_every_link():
    n = 48 * 1024 * 64  # divisible by 2 directions x 24 ranks; 12 MiB: large enough for the ring
    size = 4 * n
    event = plan("inf2.48xlarge", collective_programs(range(24), shape=(n,))).events[0]
    assert event.algorithm == "ring"
    # Two counter-rotating rings, each with half the data: a link direction carries (R-1)/R of the half
    # in the reduce-scatter and again in the all-gather.
    assert event.link_bytes == {link: (23 * size // 24, 23 * size // 24) for link in range(12)}
    # Each step: a half chunk (S/48) per link direction, and within every device one half chunk each way
    # between its two cores (read and written at the collective copy rate).
    step_s = max(size / 48 / cm.LINK_BYTES_PER_S, 2 * (2 * size / 48) / cm.COLLECTIVE_HBM_BYTES_PER_S)
    assert event.duration_ns == pytest.approx(46 * (step_s * 1e9 + HOP_NS))


def test_a_partial_ring_wraps_around_back_through_its_devices():
    machine = topo.lookup("inf2.48xlarge")
    n = 8 * 1024 * 256
    size = 4 * n
    event = plan("inf2.48xlarge", collective_programs(range(4, 12), shape=(n,))).events[0]  # devices 2-5
    assert event.algorithm == "ring"
    carried = 2 * 7 * size // 8  # one ring: 7 chunks of S/8 per hop, reduce-scatter and all-gather
    # Forward 2 -> 3 -> 4 -> 5; the wrap-around 5 -> 2 takes the same links backwards.
    assert event.link_bytes == {link_id(machine, a, a + 1): (carried, carried) for a in (2, 3, 4)}
    # Each step's longest route is the wrap-around: 3 hops.
    assert event.duration_ns == pytest.approx(14 * (size / 8 / cm.LINK_BYTES_PER_S * 1e9 + 3 * HOP_NS))


def test_ring_on_the_inf2_24xlarge_chain():
    n = 12 * 1024 * 256
    size = 4 * n
    event = plan("inf2.24xlarge", collective_programs(range(12), shape=(n,))).events[0]
    assert event.algorithm == "ring"
    carried = 2 * 11 * size // 12
    assert event.link_bytes == {link: (carried, carried) for link in range(5)}
    assert event.duration_ns == pytest.approx(22 * (size / 12 / cm.LINK_BYTES_PER_S * 1e9 + 5 * HOP_NS))


def test_torus_all_reduce_on_trn1_32xlarge_goes_along_rows_then_columns():
    machine = topo.lookup("trn1.32xlarge")
    n = 2048 * 1024
    size = 4 * n
    event = plan("trn1.32xlarge", collective_programs(range(32), shape=(n,))).events[0]
    assert event.algorithm == "torus"
    row, column = 7 * size // 8, 3 * size // 16
    expected = {link_id(machine, a, b): (row, row) if a // 4 == b // 4 else (column, column)
                for a, b in machine.links()}
    assert event.link_bytes == expected
    # 7 row steps each way plus 2 x 3 column steps, all one hop: far fewer than a 32-rank ring's 62.
    # A row step also copies a half chunk each way between the two cores of every device.
    def step(nbytes: float, copied: float = 0) -> float:
        return max(nbytes / cm.LINK_BYTES_PER_S, 2 * copied / cm.COLLECTIVE_HBM_BYTES_PER_S) * 1e9 + HOP_NS
    assert event.duration_ns == pytest.approx(14 * step(size / 16, 2 * size / 16) + 6 * step(2 * size / 64))


def test_torus_all_gather_and_reduce_scatter_move_what_a_ring_would_per_rank():
    machine = topo.lookup("trn1.32xlarge")
    elements = 64 * 1024  # large enough for the torus rings (small all-gathers take Bruck's algorithm)
    gather = plan("trn1.32xlarge", collective_programs(range(32), kind="all_gather", shape=(elements,))).events[0]
    scatter = plan("trn1.32xlarge", collective_programs(range(32), kind="reduce_scatter",
                                                       shape=(32 * elements,))).events[0]
    assert gather.algorithm == scatter.algorithm == "torus"
    block = 4 * elements
    for event in (gather, scatter):
        for (a, b), link in zip(machine.links(), range(32)):
            # rows: 7 blocks per direction (half each way); columns: 3 row-blocks of 8 blocks, 2 rings sharing
            assert event.link_bytes[link] == ((7 * block // 2,) * 2 if a // 4 == b // 4 else (3 * 8 * block,) * 2)


def test_permute_and_send_recv_take_the_shortest_routes():
    machine = topo.lookup("inf2.48xlarge")
    size = 4 * 32
    permute = plan("inf2.48xlarge", collective_programs(range(4), kind="permute", shape=(32,))).events[0]
    # Ranks 0 -> 1 and 2 -> 3 stay in their devices; 1 -> 2 crosses link 0 forwards, 3 -> 0 backwards.
    assert permute.link_bytes == {0: (size, size)}
    programs = {0: _send_recv_program(src=23, send_to=23), 23: _send_recv_program(dst=0, recv_from=0)}
    send = plan("inf2.48xlarge", programs).events[0]
    assert send.link_bytes == {link_id(machine, 0, 11): (4 * 32, 0)}  # device 0 -> 11 over the wrap link


def test_ranks_on_one_device_use_no_link():
    event = plan("inf2.48xlarge", collective_programs([0, 1], shape=(1024,))).events[0]
    assert event.link_bytes == {}
    # Two steps, each copying both halves within the device's HBM (read and write).
    assert event.duration_ns == pytest.approx(2 * (2 * 4096 / cm.COLLECTIVE_HBM_BYTES_PER_S * 1e9 + HOP_NS))


# -- time: the reference's nccom-test figures, the joint schedule -------------------------------------

# nccom-test, 2-rank fp32 all-reduce (ref §4.6; instance type not stated): size -> time in seconds.
NCCOM_2_RANK_ALL_REDUCE = {1 << 10: 58e-6, 1 << 20: 68e-6, 4 << 20: 107e-6, 16 << 20: 332e-6,
                           64 << 20: 1214e-6, 1 << 30: 18.93e-3}


def two_rank_all_reduce_s(size: int, cores=(0, 2)) -> float:
    links = Links(topo.lookup("inf2.48xlarge"))
    duration, _ = event_cost(links, algorithm(links, "all_reduce", cores, size // 4, 4))
    return duration / 1e9


def test_two_rank_all_reduce_against_nccom_test():
    """nccom-test's 2-rank all-reduce runs on the two cores of one device (its first two ranks): the model
    copies through the device's HBM at the collective rate calibrated on its 1 GiB figure, and each
    nccom-test iteration is one execution, which pays the launch. The calibration figure comes back
    within 1 %; the others (not fitted) within the bounds below -- mid sizes are slower in the model,
    which does not pipeline the steps of one collective."""
    bounds = {1 << 10: (0.95, 1.05), 1 << 20: (0.95, 1.2), 4 << 20: (1.0, 1.3), 16 << 20: (0.95, 1.1),
              64 << 20: (0.95, 1.05), 1 << 30: (0.99, 1.01)}
    for size, reference in NCCOM_2_RANK_ALL_REDUCE.items():
        modeled = two_rank_all_reduce_s(size, cores=(0, 1)) + cm.EXECUTION_LAUNCH_NS / 1e9
        assert modeled == pytest.approx(4 * size / cm.COLLECTIVE_HBM_BYTES_PER_S + 2 * HOP_NS / 1e9
                                        + cm.EXECUTION_LAUNCH_NS / 1e9)
        low, high = bounds[size]
        assert low < modeled / reference < high, (size, modeled / reference)


def test_two_ranks_on_neighbouring_devices_move_half_the_message_each_way_over_their_link():
    for size in NCCOM_2_RANK_ALL_REDUCE:
        assert two_rank_all_reduce_s(size) == pytest.approx(size / cm.LINK_BYTES_PER_S + 2 * HOP_NS / 1e9)


def _contributions_after(steps, ranks, combine):
    """What each rank holds after the steps, as a set of the ranks whose data reached it (a transfer
    sends what the sender holds before the step)."""
    held = {r: {r} for r in ranks}
    for step in steps:
        sent = [(dst, set(held[src])) for src, dst, _ in step]
        for dst, data in sent:
            held[dst] = combine(held[dst], data)
    return held


@pytest.mark.parametrize("ranks", [3, 4, 6, 12, 16, 24, 32])
def test_recursive_doubling_reduces_every_rank_into_every_rank(ranks):
    from neurontools.daemon.collectives.planning import _recursive_doubling
    steps = _recursive_doubling(list(range(ranks)), 4096)
    held = _contributions_after(steps, range(ranks), lambda mine, theirs: mine | theirs)
    assert all(held[r] == set(range(ranks)) for r in range(ranks))
    power = 1 << (ranks.bit_length() - 1)
    assert len(steps) == power.bit_length() - 1 + (2 if ranks != power else 0)  # log2 p, and the fold


@pytest.mark.parametrize("ranks", [3, 5, 12, 24, 32])
def test_bruck_all_gather_gives_every_rank_every_block_in_log_steps(ranks):
    from neurontools.daemon.collectives.planning import _bruck
    steps = _bruck(list(range(ranks)), 64)
    held = _contributions_after(steps, range(ranks), lambda mine, theirs: mine | theirs)
    assert all(held[r] == set(range(ranks)) for r in range(ranks))
    assert len(steps) == (ranks - 1).bit_length()
    assert sum(n for _, _, n in steps[-1]) == ranks * (ranks - (1 << (len(steps) - 1))) * 64  # the rest


def test_small_all_reduces_take_the_latency_optimal_algorithm_large_ones_the_ring():
    small = plan("inf2.48xlarge", collective_programs(range(24), shape=(4800,))).events[0]  # 19 KB
    large = plan("inf2.48xlarge", collective_programs(range(24), shape=(1 << 22,))).events[0]  # 16 MiB
    assert small.algorithm == "recursive doubling" and large.algorithm == "ring"
    links = Links(topo.lookup("inf2.48xlarge"))
    ring_small, _ = event_cost(links, algorithm(links, "all_reduce", tuple(range(24)), 4800, 4))
    # The ring pays 46 steps of hop latency; recursive doubling 6 steps (the longest 4 hops).
    step_s = max(19200 / 48 / cm.LINK_BYTES_PER_S, 2 * (2 * 19200 / 48) / cm.COLLECTIVE_HBM_BYTES_PER_S)
    assert ring_small == pytest.approx(46 * (step_s * 1e9 + HOP_NS))
    assert small.duration_ns < ring_small / 2


def test_a_collective_overlaps_independent_compute_on_its_rank():
    def rank(collective: bool, compute: bool) -> pb.Program:
        k = Kernel()
        x, y = k.input("x", (1 << 20,), "float32"), k.output("y", (1 << 20,), "float32")
        z, t = k.output("z", (128, 512), "float32"), k.sbuf((128, 512), "float32")
        if collective:
            library.all_reduce(k, y, x)
        if compute:
            k.memset(t, 1.0)
            for _ in range(80):
                k.activation(t, t, "exp")
            k.store(z, t)
        return k.program()
    compute_only = compile_program(rank(False, True)).estimate.device_time_ns
    collective_only = plan("inf2.48xlarge", {0: rank(True, False), 2: rank(True, False)})
    both = plan("inf2.48xlarge", {0: rank(True, True), 2: rank(True, True)})
    alone = collective_only.device_time_ns
    assert compute_only > 0.5 * alone and alone > 0.5 * compute_only  # comparable, so overlap shows
    assert max(compute_only, alone) <= both.device_time_ns < 0.6 * (compute_only + alone)


def test_a_rank_waits_for_its_slowest_peer():
    def rank(work: int) -> pb.Program:
        k = Kernel()
        x, y = k.output("x", (128, 512), "float32"), k.output("y", (128, 512), "float32")
        t = k.sbuf((128, 512), "float32")
        k.memset(t, 1.0)
        for _ in range(work):
            k.activation(t, t, "exp")
        k.store(x, t)  # the collective reads what the work wrote
        library.all_reduce(k, y, x)
        return k.program()
    models = plan("inf2.48xlarge", {0: rank(200), 1: rank(0)})
    slow, fast = models.programs[0].estimate.device_time_ns, models.programs[1].estimate.device_time_ns
    work = compile_program(rank(200)).estimate.device_time_ns - compile_program(rank(0)).estimate.device_time_ns
    assert fast == slow == models.device_time_ns
    assert fast > work


# -- the rendezvous of the ranks' threads -----------------------------------------------------------------

def _ranks(instance: str, programs: dict[int, pb.Program]):
    machine = topo.lookup(instance)
    telemetry = Telemetry([(c, machine.device_of_core(c)) for c in range(machine.core_count)],
                          len(machine.devices), len(machine.links()))
    return plan(instance, programs), FaultTable(machine, telemetry), telemetry


def _run_ranks(model: ModelCollectives, execution: ExecutionCollectives, hbm: dict[int, dict], *,
               timing_only: bool = False, timeout_s: float = 5.0, skip=()) -> dict[int, object]:
    """Runs every rank but those in `skip` in a thread of its own; their results or exceptions."""
    outcomes: dict[int, object] = {}

    def run(core: int) -> None:
        deadline = time.monotonic_ns() + int(timeout_s * 1e9)
        try:
            outcomes[core] = model.programs[core].run(hbm[core], timing_only=timing_only,
                                                      rendezvous=execution.rank(core, deadline, int(timeout_s * 1e9)))
        except CollectiveFailure as failure:
            outcomes[core] = failure
    threads = [threading.Thread(target=run, args=(core,)) for core in model.programs if core not in skip]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads), "a rank was left waiting"
    return outcomes


def _hbm(cores, rng, shape=(4, 8)):
    return {c: {"x": rng.standard_normal(shape).astype(np.float32), "y": np.zeros(shape, np.float32)} for c in cores}


def test_ranks_meet_exchange_and_count_their_links():
    rng = np.random.default_rng(3)
    model, faults, telemetry = _ranks("inf2.48xlarge", collective_programs(range(4)))
    hbm = _hbm(range(4), rng)
    _run_ranks(model, ExecutionCollectives(model, faults, telemetry), hbm)
    expected = hbm[0]["x"] + hbm[1]["x"] + hbm[2]["x"] + hbm[3]["x"]  # FP32, rank order
    for core in range(4):
        np.testing.assert_array_equal(hbm[core]["y"], expected)
    assert telemetry.link_bytes[0] == list(model.events[0].link_bytes[0]) and telemetry.link_bytes[1] == [0, 0]
    _run_ranks(model, ExecutionCollectives(model, faults, telemetry), hbm, timing_only=True)
    assert telemetry.link_bytes[0] == [2 * n for n in model.events[0].link_bytes[0]]  # counted, no data


def test_a_rank_that_never_comes_times_out_the_others():
    model, faults, telemetry = _ranks("inf2.48xlarge", collective_programs(range(4)))
    started = time.monotonic()
    outcomes = _run_ranks(model, ExecutionCollectives(model, faults, telemetry), _hbm(range(4), np.random.default_rng(0)),
                          timeout_s=0.3, skip=(2,))
    assert time.monotonic() - started < 3
    messages = {o.message for o in outcomes.values()}
    assert {o.status for o in outcomes.values()} == {pb.TIMED_OUT} and len(messages) == 1
    assert "waited at all_reduce (instruction 0) for NeuronCore 2, which did not reach it within " \
           "NEURON_RT_EXEC_TIMEOUT (0.3 s)" in messages.pop()


def test_an_abort_releases_the_waiting_ranks_at_once():
    model, faults, telemetry = _ranks("inf2.48xlarge", collective_programs(range(4)))
    execution = ExecutionCollectives(model, faults, telemetry)
    threading.Timer(0.1, execution.abort, args=(None, "the execution was abandoned")).start()
    started = time.monotonic()
    outcomes = _run_ranks(model, execution, _hbm(range(4), np.random.default_rng(0)), skip=(3,))
    assert time.monotonic() - started < 2
    assert all(o.status is None and o.message == "the execution was abandoned" for o in outcomes.values())


def test_a_link_that_is_down_fails_every_rank_with_its_name():
    model, faults, telemetry = _ranks("inf2.48xlarge", collective_programs(range(4)))
    faults.inject(pb.Fault(kind=pb.LINK_DOWN, link_id=0))
    hbm = _hbm(range(4), np.random.default_rng(0))
    outcomes = _run_ranks(model, ExecutionCollectives(model, faults, telemetry), hbm)
    assert {(o.status, o.message) for o in outcomes.values()} == {
        (pb.COMPLETED_WITH_ERR, "NeuronLink 0 (device 0 <-> device 1) is down: all_reduce (instruction 0) over "
                                "NeuronCores 0-3 routes through it")}
    assert telemetry.link_bytes[0] == [0, 0] and not hbm[0]["y"].any()
    # Ranks that stay on one device do not need it.
    pair, faults_pair, telemetry_pair = _ranks("inf2.48xlarge", collective_programs([0, 1]))
    faults_pair.inject(pb.Fault(kind=pb.LINK_DOWN, link_id=0))
    outcomes = _run_ranks(pair, ExecutionCollectives(pair, faults_pair, telemetry_pair), _hbm([0, 1], np.random.default_rng(1)))
    assert not any(isinstance(o, CollectiveFailure) for o in outcomes.values())
