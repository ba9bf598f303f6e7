"""Collectives: planning ring and mesh steps over the NeuronLink topology, and the
rendezvous that makes the ranks of one collective meet."""
