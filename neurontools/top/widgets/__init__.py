"""neuron-top's widgets: each renders one part of the screen from immutable view data."""
