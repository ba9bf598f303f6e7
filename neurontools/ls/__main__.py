"""`python -m neurontools.ls` runs neuron-ls."""

from neurontools.ls.cli import main

raise SystemExit(main())
