"""The runtime as the Neuron runtime sees it: sessions, models, core selection,
executions (one by one or as in-daemon load) and the snapshots tools read."""
