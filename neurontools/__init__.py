"""neurontools: a software Inferentia2 and faithful clones of the AWS Neuron tools."""

__version__ = "0.1.0"
