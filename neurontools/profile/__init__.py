"""neuron-profile: where an execution's time goes on the software chip (docs/profile.md)."""
