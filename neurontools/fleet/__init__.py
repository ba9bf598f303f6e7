"""neuron-fleet: many software Inferentia2 hosts, each with its own exporter, in one real Prometheus."""
