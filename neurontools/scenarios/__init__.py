"""Scenarios: workloads and injected faults on a timeline (neuron-scenario)."""
