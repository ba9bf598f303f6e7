"""The driver's sysfs tree (`/sys/devices/virtual/neuron_device`), kept from the
daemon's own counters for software that reads the device where AWS puts it."""
