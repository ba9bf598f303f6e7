"""The published shapes of the models the workloads imitate, and their parameter counts.

Shapes come from the models' published configurations (Hugging Face config.json of
bert-base-uncased, bert-large-uncased, distilbert-base-uncased, google/electra-large-discriminator,
meta-llama/Llama-2-{7b,13b,70b}-hf, meta-llama/Meta-Llama-3-8B, mistralai/Mistral-7B-v0.1,
facebook/opt-{13b,30b,66b}) and the OPT paper (Zhang et al. 2022, table 1) for OPT-175B.
Mistral's sliding attention window (4096) is not modeled: prompts and generations here stay within it
or attend over the whole cache. The "tiny" presets are reduced
sizes for compute mode: small enough to check every number against numpy in a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class EncoderArchitecture:
    """A BERT-style encoder: post-LayerNorm layers, GELU MLP, biases everywhere, a tanh pooler (not
    DistilBERT, which also has no token-type embeddings)."""

    name: str
    layers: int
    hidden: int
    heads: int
    intermediate: int
    vocab: int = 30522
    max_positions: int = 512
    token_types: int = 2
    pooler: bool = True

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def layer_parameters(self) -> int:
        d, f = self.hidden, self.intermediate
        attention = 4 * (d * d + d)          # q, k, v, o with biases
        mlp = (d * f + f) + (f * d + d)      # fc1, fc2 with biases
        return attention + mlp + 2 * 2 * d   # two LayerNorms (gamma, beta)

    def embedding_parameters(self) -> int:
        d = self.hidden
        return (self.vocab + self.max_positions + self.token_types) * d + 2 * d  # tables + LayerNorm

    def parameters(self) -> int:
        pooler = self.hidden * self.hidden + self.hidden if self.pooler else 0
        return self.embedding_parameters() + self.layers * self.layer_parameters() + pooler


@dataclass(frozen=True)
class DecoderArchitecture:
    """A decoder-only LLM. Llama: RMSNorm, SwiGLU MLP, no biases, grouped-query attention, untied
    embeddings. OPT: LayerNorm, ReLU MLP, biases, learned positions, LM head tied to the embeddings."""

    name: str
    family: Literal["llama", "opt"]
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    max_positions: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def biases(self) -> bool:
        return self.family == "opt"

    @property
    def gated_mlp(self) -> bool:
        return self.family == "llama"

    @property
    def learned_positions(self) -> int:
        """Rows of the learned position table (OPT keeps 2 extra rows for its position offset)."""
        return self.max_positions + 2 if self.family == "opt" else 0

    def layer_parameters(self) -> int:
        d, f, kv = self.hidden, self.intermediate, self.kv_heads * self.head_dim
        attention = d * d + 2 * d * kv + d * d                   # q, k, v, o
        mlp = (3 if self.gated_mlp else 2) * d * f               # gate, up, down | fc1, fc2
        norms = (2 if self.biases else 1) * 2 * d                # two norms: weight (+ bias)
        biases = (d + 2 * kv + d + f + d) if self.biases else 0  # q, k, v, o, fc1, fc2
        return attention + mlp + norms + biases

    def embedding_parameters(self) -> int:
        """Token (and position) tables; with untied embeddings the LM head is counted here too."""
        tables = (self.vocab + self.learned_positions) * self.hidden
        return tables + (0 if self.family == "opt" else self.vocab * self.hidden)

    def parameters(self) -> int:
        final_norm = (2 if self.biases else 1) * self.hidden
        return self.embedding_parameters() + self.layers * self.layer_parameters() + final_norm


ENCODERS: dict[str, EncoderArchitecture] = {a.name: a for a in (
    EncoderArchitecture("bert-base", layers=12, hidden=768, heads=12, intermediate=3072),
    EncoderArchitecture("bert-large", layers=24, hidden=1024, heads=16, intermediate=4096),
    EncoderArchitecture("distilbert-base", layers=6, hidden=768, heads=12, intermediate=3072, token_types=0,
                        pooler=False),
    EncoderArchitecture("electra-large", layers=24, hidden=1024, heads=16, intermediate=4096),
    EncoderArchitecture("bert-tiny", layers=2, hidden=128, heads=2, intermediate=512, vocab=1024,
                        max_positions=128),
)}

DECODERS: dict[str, DecoderArchitecture] = {a.name: a for a in (
    DecoderArchitecture("llama-2-7b", "llama", layers=32, hidden=4096, heads=32, kv_heads=32,
                        intermediate=11008, vocab=32000, max_positions=4096),
    DecoderArchitecture("llama-2-13b", "llama", layers=40, hidden=5120, heads=40, kv_heads=40,
                        intermediate=13824, vocab=32000, max_positions=4096),
    DecoderArchitecture("llama-2-70b", "llama", layers=80, hidden=8192, heads=64, kv_heads=8,
                        intermediate=28672, vocab=32000, max_positions=4096),
    DecoderArchitecture("llama-3-8b", "llama", layers=32, hidden=4096, heads=32, kv_heads=8,
                        intermediate=14336, vocab=128256, max_positions=8192),
    DecoderArchitecture("mistral-7b", "llama", layers=32, hidden=4096, heads=32, kv_heads=8,
                        intermediate=14336, vocab=32000, max_positions=32768),
    DecoderArchitecture("opt-13b", "opt", layers=40, hidden=5120, heads=40, kv_heads=40,
                        intermediate=20480, vocab=50272, max_positions=2048),
    DecoderArchitecture("opt-30b", "opt", layers=48, hidden=7168, heads=56, kv_heads=56,
                        intermediate=28672, vocab=50272, max_positions=2048),
    DecoderArchitecture("opt-66b", "opt", layers=64, hidden=9216, heads=72, kv_heads=72,
                        intermediate=36864, vocab=50272, max_positions=2048),
    DecoderArchitecture("opt-175b", "opt", layers=96, hidden=12288, heads=96, kv_heads=96,
                        intermediate=49152, vocab=50272, max_positions=2048),
    DecoderArchitecture("llama-tiny", "llama", layers=2, hidden=256, heads=4, kv_heads=2,
                        intermediate=512, vocab=512, max_positions=512),
    DecoderArchitecture("opt-tiny", "opt", layers=2, hidden=256, heads=4, kv_heads=4,
                        intermediate=1024, vocab=512, max_positions=512),
)}
