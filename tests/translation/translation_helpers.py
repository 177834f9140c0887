"""Helpers for translation tests: random adapters with a known shared structure, tiny
Llamas of different widths and depths saved as local model directories, and toy tasks."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from transferlab.translation.features import LoraAdapter, from_factors

X_DIMS = {"q_proj": (16, 16), "v_proj": (8, 16)}
Y_DIMS = {"q_proj": (24, 20), "v_proj": (12, 20)}


def random_adapter(name: str, base: str, layers: int, dims: dict, rank: int, generator: torch.Generator) -> LoraAdapter:
    factors = {}
    for layer in range(layers):
        for module, (out, fan_in) in dims.items():
            factors[(layer, module)] = (torch.randn(rank, fan_in, generator=generator) / fan_in**0.5,
                                        torch.randn(out, rank, generator=generator) * 0.1)
    return from_factors(name, base, factors)


def mix(basis: list[LoraAdapter], z: torch.Tensor, name: str) -> LoraAdapter:
    """Σ z_j basis_j as one adapter (rank = sum of ranks)."""
    factors = {}
    for t in basis[0].tensors:
        factors[t] = (torch.cat([b.A[t] for b in basis]), torch.cat([float(zj) * b.B[t] for zj, b in zip(z, basis)], 1))
    return from_factors(name, basis[0].base_model, factors)


def save_tiny_model(directory: Path, hidden: int, layers: int, seed: int) -> Path:
    from tiny_models import make_tokenizer  # tests/ (on sys.path through its conftest)

    from transferlab.models import tiny_llama

    tokenizer = make_tokenizer()
    model = tiny_llama(vocab_size=len(tokenizer), hidden=hidden, layers=layers, seed=seed)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


TASK_YAML = """\
name: {name}
domain: {domain}
output_type: multiple_choice
source: {{path: {name}.jsonl}}
prompt: "{{{{ q }}}}"
choices: ["yes", "no"]
answer: label
"""


def write_toy_tasks(directory: Path) -> dict[str, list[str]]:
    """Five tiny yes/no tasks in two domains, as YAML task files over JSONL data."""
    domains = {"letters": ["toy-a", "toy-b", "toy-c"], "digits": ["toy-d", "toy-e"]}
    for domain, names in domains.items():
        for k, name in enumerate(names):
            rows = [{"q": f"{name} {i}?", "label": (i * (k + 2)) % 3 == 0} for i in range(60)]
            (directory / f"{name}.jsonl").write_text("".join(json.dumps({**r, "label": int(not r["label"])}) + "\n"
                                                             for r in rows))
            (directory / f"{name}.yaml").write_text(TASK_YAML.format(name=name, domain=domain))
    return domains


def paired_adapters(n: int = 13, seed: int = 0) -> tuple[list[LoraAdapter], list[LoraAdapter]]:
    """n task adapters on X (4 layers) and Y (3 layers, other widths) driven by the same 3
    latent numbers per task: a linear map between them exists, so ridge must find it."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 3, generator=g)
    bx = [random_adapter(f"bx{j}", "model-x", 4, X_DIMS, 2, g) for j in range(3)]
    by = [random_adapter(f"by{j}", "model-y", 3, Y_DIMS, 2, g) for j in range(3)]
    return [mix(bx, z[i], f"task{i}") for i in range(n)], [mix(by, z[i], f"task{i}") for i in range(n)]

