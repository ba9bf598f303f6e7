"""neuron-profile: where an execution's time goes on the software Inferentia2, without hardware.

  neuron-profile capture --model 10001 [--core 3] [--session 1] -o mlp.profile.json   a program's model
  neuron-profile capture --preset bert-large:cores=1 -o profiles/       each stage program of a preset
  neuron-profile view mlp.profile.json [--json S.json] [--trace T.json] [--parquet DIR]

`view` prints the summary and findings; --trace writes a Chrome/Perfetto trace (ui.perfetto.dev),
--parquet Neuron Explorer's processed-profile tables (needs pyarrow). docs/profile.md has the details.
Exit status: 0 done, 1 the daemon refused (no such model, not executed yet) or cannot be reached,
2 bad arguments or files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from neurontools import connection_options
from neurontools.client import Device, NeuronError
from neurontools.daemon.device import topology as topo
from neurontools.profile import analysis, chrome_trace, explorer_tables
from neurontools.profile.fetch import fetch_profile
from neurontools.profile.profile_file import (ProfileFileError, make_directory, read_profile, write_atomically,
                                              write_profile)
from neurontools.workloads.catalog import SpecError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neuron-profile", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    capture = commands.add_parser("capture", help="profile a loaded model's first execution, or a preset's stages")
    what = capture.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", type=int, metavar="ID", help="a model loaded on neurond (ids from 10001)")
    what.add_argument("--preset", metavar="SPEC", help="a neuron-workload spec, e.g. bert-large:cores=1")
    capture.add_argument("--core", type=int, help="with --model: the subgraph on this core (default: its first)")
    capture.add_argument("--session", type=int, metavar="ID",
                         help="with --model: the session that loaded it (refused if the model is not that session's)")
    capture.add_argument("--instance-type", default="inf2.xlarge", help="with --preset: the machine (default inf2.xlarge)")
    capture.add_argument("-o", "--output", required=True,
                         help="the profile file (--model), or a directory for one file per stage (--preset)")
    connection_options.add_arguments(capture)
    view = commands.add_parser("view", help="summarize a profile; write JSON, a trace or Parquet tables")
    view.add_argument("profile")
    view.add_argument("--top", type=int, default=10, help="instructions kinds listed (default 10)")
    view.add_argument("--json", metavar="FILE", help="write the summary as JSON")
    view.add_argument("--trace", metavar="FILE", help="write a Chrome/Perfetto trace-event file")
    view.add_argument("--parquet", metavar="DIR", help="write Neuron Explorer's Summary, Instruction, DmaPacket "
                                                       "and Metadata tables (needs pyarrow)")
    return parser


def _capture_model(args) -> int:
    with Device(connection_options.from_arguments(args)) as device:
        answer, profile = fetch_profile(device, args.model, args.core, args.session)
    write_profile(Path(args.output), profile)
    print(f"neuron-profile: model {answer.model_id} ({answer.model_name}) on NeuronCore {answer.core_id}: "
          f"{profile['device_time_ns'] / 1000:,.3f} µs, {len(profile['instructions']):,} instructions -> {args.output}")
    return 0


def _capture_preset(args) -> int:
    from neurontools.profile.presets import preset_profiles  # noqa: PLC0415 (imports the workloads)

    topo.lookup(args.instance_type)
    stages = preset_profiles(args.preset, args.instance_type)
    directory = Path(args.output)
    make_directory(directory)
    for stage in stages:
        path = directory / f"{stage.name}.profile.json"
        write_profile(path, stage.profile)
        a = analysis.analyze(stage.profile)
        print(f"{stage.name:<12} x{stage.times:g} per request  {a.total_ns / 1000:12,.3f} µs  {a.bound}-bound  -> {path}")
    return 0


def _view(args) -> int:
    profile = read_profile(Path(args.profile))
    result = analysis.analyze(profile, top=args.top)
    source = profile.get("source", {})
    title = (f"profile of {source.get('model_name') or source.get('preset', '?')}"
             + (f" ({source['stage']})" if "stage" in source else "")
             + f" on NeuronCore {source.get('core_id', 0)} of {source.get('instance_type', '?')}")
    sys.stdout.write(analysis.render(result, title))
    if args.json:
        write_atomically(Path(args.json), json.dumps(analysis.as_dict(result), indent=2).encode())
    if args.trace:
        write_atomically(Path(args.trace), json.dumps(chrome_trace.trace_events(profile, title)).encode())
    if args.parquet:
        explorer_tables.write_tables(Path(args.parquet), profile, result, title)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "view":
            return _view(args)
        return _capture_model(args) if args.model is not None else _capture_preset(args)
    except (ProfileFileError, SpecError, topo.UnknownInstanceType, connection_options.ConnectionOptionError) as exc:
        print(f"neuron-profile: {exc}", file=sys.stderr)
        return 2
    except NeuronError as exc:
        print(f"neuron-profile: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
