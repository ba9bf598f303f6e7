"""Model-shaped workloads for neurond, built from the kernel library: a BERT-style encoder
(data-parallel) and decoder LLMs (tensor-parallel, prefill and decode), the neuron-workload CLI
and the demo. docs/workloads.md describes what is modeled."""
