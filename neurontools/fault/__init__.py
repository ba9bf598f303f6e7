"""neuron-fault: inject hardware faults through neurond's admin API."""
