"""neuron-lab: a software Neuron host with a real Prometheus evaluating the bundled alert rules."""
