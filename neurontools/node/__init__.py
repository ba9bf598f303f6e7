"""The software node as the OS shows it: AWS tool paths and the driver's sysfs paths (docs/sysfs.md)."""
