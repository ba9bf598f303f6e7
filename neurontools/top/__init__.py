"""neuron-top: the real-time Textual view of a Neuron machine.

The screen is computed from neuron-monitor Reports (DESIGN principle 1): `overview` and
`memory_tree` turn one Report into what the real tool shows, `applications` into the per-application
tables that go beyond it. Snapshot facts a Report cannot carry (per-engine busy time, link traffic,
topology, session ids) come from `device_extras`, fed from the same snapshot pair. `sources` produce
frames (live from neurond, a neuron-monitor NDJSON stream, a replayed recording); `app` shows them.
"""
