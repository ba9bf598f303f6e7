"""The software chip itself: topology, HBM, telemetry counters and injected faults.

Nothing here knows about sessions, models or gRPC; runtime/ and server/ build on it.
"""
