"""Adapters transferlab did not train: local PEFT directories, hub ids, folders of adapters.

    learners:
      - name: theirs
        type: external
        adapters:
          - {path: adapters/alpaca-lora, label: instruction_following}
          - {hub: someone/llama-gsm8k-lora, label: gsm8k}       # from the local Hugging Face cache
          - {folder: downloaded/, labels: {math-v2: math}}      # each subdirectory one adapter

An adapter is known by the hash of its content (adapter_config.json and its weights), never
by its path: moving a directory keeps its key, editing its weights makes a new one. Before
any work starts, each is checked against every model of the spec: the base model its config
names and the shapes of its LoRA weights must fit, else a one-line error names it. A plan
copies each into the store (job kind `import_adapter`, an `adapter` artifact like a trained
one), so evaluations, executors and the store treat it as any other adapter.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferlab import models
from transferlab.engine.jobs import Job, Runtime, Tick, register_job_kind
from transferlab.errors import TransferlabError
from transferlab.tasks import stable_hash

WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
# Hub ids of the bundled models: an adapter made for the hub model fits the bundled one.
BUILTIN_HUB_IDS: dict[str, tuple[str, ...]] = {"smollm2-135m": ("HuggingFaceTB/SmolLM2-135M-Instruct",),
                                               "gemma3-270m": ("google/gemma-3-270m",)}
_LORA_KEY = re.compile(r"(?:base_model\.model\.)?(.+)\.(lora_A|lora_B|lora_embedding_A|lora_embedding_B|"
                       r"lora_magnitude_vector)(?:\.weight)?")


@dataclass(frozen=True)
class ExternalAdapter:
    """One adapter of an `external` learner: where it is and what it is said to be for."""

    label: str  # the nominal label (a task or a domain): it plays the role of the source task
    source: str  # what the spec named, for messages: a path, or hub:org/name[@revision]
    path: str  # the resolved directory


# ---- finding adapters ---------------------------------------------------------------------
def hub_cache() -> Path:
    """The Hugging Face hub cache, read from the environment now (HF_HUB_CACHE, else HF_HOME/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_snapshot(repo_id: str, revision: str | None = None) -> Path:
    """The snapshot directory of a hub repository in the local cache (models--org--name/snapshots/<commit>).

    `revision` is a branch or tag under refs/ or a commit; by default refs/main, or the only
    snapshot there is. Offline, a repository not in the cache is a one-line error.
    """
    repo = hub_cache() / f"models--{repo_id.replace('/', '--')}"
    wanted = revision or "main"
    ref = repo / "refs" / wanted
    commit = ref.read_text().strip() if ref.is_file() else wanted
    snapshots = sorted(p for p in (repo / "snapshots").glob("*") if p.is_dir()) if repo.is_dir() else []
    if (repo / "snapshots" / commit).is_dir():
        return repo / "snapshots" / commit
    if revision is None and len(snapshots) == 1:
        return snapshots[0]
    where = f"revision {revision!r} of " if revision else ""
    raise TransferlabError(f"{where}{repo_id!r} is not in the local Hugging Face cache ({hub_cache()}): run "
                           f"`huggingface-cli download {repo_id}` where there is network, or give its directory")


def check_adapter_files(path: Path, what: str) -> Path:
    """`path` if it is a PEFT adapter directory (a config and a weights file), else a one-line error."""
    if not path.is_dir():
        raise TransferlabError(f"{what}: no directory {path}")
    if not (path / "adapter_config.json").is_file():
        raise TransferlabError(f"{what}: {path} is not a PEFT adapter directory (no adapter_config.json)")
    if weights_file(path) is None:
        raise TransferlabError(f"{what}: {path} has no {' or '.join(WEIGHT_FILES)}")
    return path


def weights_file(path: Path) -> Path | None:
    return next((path / n for n in WEIGHT_FILES if (path / n).is_file()), None)


def resolve_adapter(ref: str | Path) -> Path:
    """A local adapter directory or a hub id (org/name[@revision]) from the cache, as a checked directory."""
    text = str(ref)
    path = Path(text).expanduser()
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") != 1:
        return check_adapter_files(path, f"adapter {text}")
    repo, _, revision = text.partition("@")
    return check_adapter_files(hub_snapshot(repo, revision or None), f"adapter {text}")


def folder_adapters(folder: Path, labels: dict[str, str]) -> list[tuple[str, Path]]:
    """(label, directory) of every subdirectory of `folder`, labelled by `labels` or by its name."""
    if not folder.is_dir():
        raise TransferlabError(f"adapter folder {folder} does not exist")
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        raise TransferlabError(f"adapter folder {folder} has no subdirectories: put each adapter in its own")
    unknown = sorted(set(labels) - {p.name for p in subdirs})
    if unknown:
        raise TransferlabError(f"labels name {', '.join(unknown)}, which are not subdirectories of {folder} "
                               f"(those are {', '.join(p.name for p in subdirs)})")
    return [(labels.get(p.name, p.name), check_adapter_files(p, f"adapter folder {folder}")) for p in subdirs]


def content_key(path: Path) -> str:
    """sha256 of the adapter's config (as parsed JSON, so formatting does not count) and weights."""
    digest = hashlib.sha256()
    config = json.loads((path / "adapter_config.json").read_text())
    digest.update(json.dumps(config, sort_keys=True).encode())
    weights = weights_file(path)
    if weights is None:
        raise TransferlabError(f"{path} has no {' or '.join(WEIGHT_FILES)}: not a PEFT adapter")
    digest.update(weights.name.encode())
    with open(weights, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def store_key(content: str) -> str:
    """The store key of an imported adapter: its content alone."""
    return stable_hash("external-adapter", content)


# ---- does it fit the model? -----------------------------------------------------------------
def _norm(name: str) -> str:
    return name.strip().rstrip("/").lower()


def model_names(model: str) -> set[str]:
    """Every name an adapter's `base_model_name_or_path` may give for `model`: the spec's name,
    its directory, the bundled model's hub id and conversion directory."""
    ref = models.resolve(model)
    names = {ref.name, ref.location, *BUILTIN_HUB_IDS.get(ref.name, ())}
    if ref.builtin:
        names.add(str(models.converted_dir(ref.builtin)))
    return {_norm(n) for n in names}


def same_model(base: str, model: str) -> bool:
    """Whether an adapter's recorded base model names `model` (the full name, or its last path
    component: an adapter trained from a local copy of org/name records that copy's path)."""
    names = model_names(model)
    if _norm(base) in names:
        return True
    path = Path(base).expanduser()
    if path.is_dir() and any(path.resolve() == Path(n).resolve() for n in names if Path(n).is_dir()):
        return True
    tail = _norm(base).rsplit("/", 1)[-1]
    return any(tail == n.rsplit("/", 1)[-1] for n in names)


def model_directory(model: str) -> Path:
    """The local directory of a model's config and weights (a hub model's cache snapshot)."""
    ref = models.resolve(model)
    if ref.kind == "hub":
        return hub_snapshot(ref.location)
    return Path(models.model_dir(ref))


@functools.lru_cache(maxsize=8)
def parameter_shapes(model: str) -> dict[str, tuple[int, ...]]:
    """Every parameter's shape, tied ones under each name, from a weightless (meta) copy of the model."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(model_directory(model)))
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    return {n: tuple(p.shape) for n, p in skeleton.named_parameters(remove_duplicate=False)}


def adapter_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor in an adapter's weights file, without loading the tensors."""
    weights = weights_file(path)
    if weights is None:
        raise TransferlabError(f"{path} has no {' or '.join(WEIGHT_FILES)}: not a PEFT adapter")
    if weights.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt") as handle:
            return {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}  # noqa: SIM118
    import torch

    return {k: tuple(v.shape) for k, v in torch.load(weights, map_location="meta", weights_only=True).items()}


def shape_problem(adapter: dict[str, tuple[int, ...]], model: dict[str, tuple[int, ...]],
                  fan_in_fan_out: bool = False) -> str | None:
    """What does not fit, in words, or None when every LoRA tensor fits its module."""
    for key, shape in sorted(adapter.items()):
        match = _LORA_KEY.fullmatch(key)
        if match is None:  # a fully saved module (modules_to_save): the same shape as the model's
            name = re.sub(r"\.(modules_to_save|original_module)(\.\w+)?(?=\.)", "", key.removeprefix("base_model.model."))
            if name not in model:
                return f"it holds {key}, and the model has no parameter {name}"
            if model[name] != shape:
                return f"{key} has shape {shape}, the model's {name} has {model[name]}"
            continue
        module, part = match.groups()
        weight = model.get(f"{module}.weight")
        if weight is None:
            return f"it has LoRA weights for {module}, which the model does not have"
        if part.startswith("lora_embedding"):  # Embedding: weight (num, dim), A (r, num), B (dim, r)
            axis, want = (1, weight[0]) if part.endswith("A") else (0, weight[1])
        else:  # Linear: weight (out, in) (Conv1D: (in, out)), A (r, in), B (out, r), magnitude (out,)
            out_dim, in_dim = (weight[1], weight[0]) if fan_in_fan_out else weight
            axis, want = (1, in_dim) if part == "lora_A" else (0, out_dim)
        if len(shape) <= axis or shape[axis] != want:
            return f"{part} of {module} has shape {shape}, the module's weight has {weight}"
    return None


def check_fits(path: Path, model: str, source: str | None = None) -> None:
    """A one-line error naming the adapter when it was made for another base model than `model`:
    its recorded base model is not one of the model's names, or its shapes do not fit."""
    what = source or str(path)
    config = json.loads((path / "adapter_config.json").read_text())
    base = config.get("base_model_name_or_path") or ""
    if base and not same_model(base, model):
        raise TransferlabError(f"adapter {what} was made for base model {base!r}, not for {model!r}: evaluate it "
                               "on its own base model, or remove it from the spec")
    problem = shape_problem(adapter_shapes(path), parameter_shapes(model), bool(config.get("fan_in_fan_out")))
    if problem:
        raise TransferlabError(f"adapter {what} does not fit {model!r} ({problem}): it was made for another "
                               f"base model{f' ({base})' if base else ''}")


def fitting_adapter(ref: str | Path, model: str) -> Path:
    """`transferlab evaluate --adapter`: a directory or hub id, resolved and checked to fit `model`."""
    path = resolve_adapter(ref)
    check_fits(path, model, str(ref))
    return path


# ---- the job that copies one into the store ---------------------------------------------------
def import_job(adapter: ExternalAdapter, content: str, learner: str) -> Job:
    """The job that copies `adapter` into the store; its key is its content alone."""
    params = {"path": adapter.path, "source": adapter.source, "label": adapter.label, "content": content,
              "learner": learner}
    return Job("import_adapter", store_key(content), params, label=f"import {adapter.source} ({adapter.label})")


def run_import(job: Job, rt: Runtime, tick: Tick) -> dict[str, Any]:
    """Copy the adapter's config and weights into the store, after checking its content is the
    one the plan was made with."""
    p = job.params
    source = check_adapter_files(Path(p["path"]), f"adapter {p['source']}")
    if content_key(source) != p["content"]:
        raise TransferlabError(f"adapter {p['source']} changed since the run was planned: run the same command again")
    with rt.store.writing("adapter", job.key, meta=p) as out:
        for name in ("adapter_config.json", weights_file(source).name):  # type: ignore[union-attr]
            shutil.copyfile(source / name, out / name)
        (out / "external.json").write_text(json.dumps({k: p[k] for k in ("source", "label", "content")}))
    tick(1, 1, "")
    return {"label": p["label"], "content": p["content"][:16]}


register_job_kind("import_adapter", "adapter", "transferlab.engine.external_adapters:run_import")
