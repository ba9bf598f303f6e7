"""A sysfs consumer following Slurm's gpu/nrt plugin (gres AutoDetect=nrt), stdlib only.

The plugin's documented logic (SchedMD/slurm src/plugins/gpu/nrt/gpu_nrt.c), re-expressed:
- the device count is the number of entries named neuron<N> in /sys/devices/virtual/neuron_device/;
- each device's gres Type is the first line of neuron<N>/info/architecture/device_name, lowercased
  with spaces made underscores;
- its Links come from neuron<N>/connected_devices, split on commas and spaces: for every device
  index i, 1 if i is listed, -1 for the device itself, else 0;
- its File is /dev/neuron<N>.
Prints one gres.conf-style line per device, in index order. Exits 1 when the directory is missing.
"""

import os
import re
import sys

PREFIX = "/sys/devices/virtual/neuron_device/"


def main() -> int:
    try:
        entries = os.listdir(PREFIX)
    except OSError as exc:
        print(f"no Neuron sysfs interface: {exc}", file=sys.stderr)
        return 1
    indexes = sorted(int(m.group(1)) for m in (re.fullmatch(r"neuron(\d+)", e) for e in entries) if m)
    count = len(indexes)
    for index in indexes:
        with open(f"{PREFIX}neuron{index}/info/architecture/device_name") as f:
            name = f.readline().rstrip("\n").replace(" ", "_").lower()
        with open(f"{PREFIX}neuron{index}/connected_devices") as f:
            links = {int(token) for token in re.split(r"[, ]+", f.readline().strip()) if token}
        row = ",".join("1" if i in links else "-1" if i == index else "0" for i in range(count))
        print(f"Name=gpu Type={name} File=/dev/neuron{index} Links={row}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
