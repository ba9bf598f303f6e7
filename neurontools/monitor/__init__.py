"""neuron-monitor: the report model, its Go-compatible JSON encoding, and the faces built on it.

`report` is the published schema of one neuron-monitor report; `report_json` reads and writes it
byte for byte as the real (Go) tool does. neuron-top and the Prometheus and CloudWatch adapters
consume the same model.
"""
