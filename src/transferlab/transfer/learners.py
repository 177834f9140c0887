"""The `learners:` of a transfer spec: what is trained on each source, where, or which adapters
someone else trained.

    learners:
      - {name: lora, type: lora, rank: 8}                    # SFT here
      - {name: rl, type: grpo, backend: tinker, steps: 50}   # GRPO on the Tinker service
      - name: theirs                                         # adapters transferlab did not train
        type: external
        adapters:
          - {path: adapters/alpaca, label: instruction_following}
          - {hub: org/llama-gsm8k-lora, revision: main, label: gsm8k}
          - {folder: downloaded/, labels: {math-v2: math}}

A top-level `adapters: [...]` block is the same as a learner `{name: external, type: external}`.
An external adapter's label plays the role of the source task: it is the `trained_on` of its
cells (`direct` on the target of that name, `transfer` on the others) and, as a task name or a
domain, the nominal label the drift analysis checks. Labels default to the directory's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferlab.constraints import NAME
from transferlab.engine.external_adapters import ExternalAdapter, folder_adapters, hub_snapshot, check_adapter_files
from transferlab.engine.spec import Located, check_keys, config_from
from transferlab.errors import TransferlabError, closest

LEARNER_TYPES = ("lora", "grpo", "external")  # SFT; GRPO on the task's verifiable reward; adapters made elsewhere
BACKENDS = ("local", "tinker")  # where lora and grpo learners train
EXTERNAL_FIELDS = {"name", "type", "adapters"}
# Settings the Tinker service does not take: explicit values are refused, not ignored.
TINKER_FIXED = {"alpha": "LoRA alpha is fixed by the service", "dropout": "the service trains without dropout",
                "eval_every": "learning curves score the local model during training",
                "inner_steps": "one update per sampled batch is what the service's loss does",
                "clip_eps": "the service's importance_sampling loss has no clip",
                "sample_choices": "the service samples free text",
                "choice_mass_coef": "the service samples free text"}


@dataclass(frozen=True)
class Learner:
    """A named way of learning from a source: a LoRA adapter trained with SFT (`lora`) or GRPO
    (`grpo`), here or on Tinker (`backend`), or adapters made elsewhere (`external`).

    `auto_learning_rate` is true when the spec left the rate out: the plan then uses the
    default for each model's family (`learn.defaults.default_learning_rate`).
    """

    name: str
    type: str
    train: Any  # TrainConfig (lora) or learn.grpo.GRPOConfig (grpo); None for external
    auto_learning_rate: bool = False
    backend: str = "local"  # "local" | "tinker"
    tinker_model: str = ""  # the service's name of the base model ("" = the spec model's hub id)
    adapters: tuple[ExternalAdapter, ...] = ()  # external learners only

    @property
    def trains(self) -> bool:
        return self.type != "external"


def _config_class(kind: str) -> type:
    if kind == "grpo":
        from transferlab.learn.grpo import GRPOConfig

        return GRPOConfig
    from transferlab.learn.sft import TrainConfig

    return TrainConfig


def parse_learners(items: Any, at: Located, base: Path, adapters: Any = None) -> tuple[Learner, ...]:
    """The spec's learners, plus the learner a top-level `adapters:` block stands for."""
    if not isinstance(items, list) or (not items and adapters is None):
        raise at.error(("learners",), "expected a non-empty list of learners, e.g. [{name: lora, type: lora, rank: 8}]")
    learners = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise at.error(("learners", i), "expected a mapping with name, type and hyper-parameters")
        learners.append(_learner(dict(item), ("learners", i), at, base, i))
    if adapters is not None:
        learners.append(Learner("external", "external", None, adapters=_adapters(adapters, ("adapters",), at, base)))
    names = [l.name for l in learners]
    if len(set(names)) != len(names):
        raise at.error(("learners",), f"learner names must be unique, got {names}")
    return tuple(learners)


def _learner(item: dict[str, Any], path: tuple[Any, ...], at: Located, base: Path, i: int) -> Learner:
    name = item.pop("name", f"lora-{i}")
    if not isinstance(name, str) or not NAME.match(name):
        raise at.error((*path, "name"), f"a learner's name is a word (letters, digits, _ . -), got {name!r}")
    kind = item.pop("type", "lora")
    if kind not in LEARNER_TYPES:
        near = closest(str(kind), LEARNER_TYPES)
        raise at.error((*path, "type"), f"unknown learner type {kind!r}: " +
                       (f"did you mean {near[0]!r}?" if near else f"valid: {', '.join(LEARNER_TYPES)}"))
    if kind == "external":
        check_keys(item, EXTERNAL_FIELDS - {"name", "type"}, path, at)
        if "adapters" not in item:
            raise at.error(path, "an external learner lists its adapters: adapters: [{path: DIR, label: TASK}, ...]")
        return Learner(name, kind, None, adapters=_adapters(item["adapters"], (*path, "adapters"), at, base))
    backend = item.pop("backend", "local")
    if backend not in BACKENDS:
        raise at.error((*path, "backend"), f"unknown backend {backend!r}: valid: {', '.join(BACKENDS)}")
    tinker_model = item.pop("tinker_model", "")
    if tinker_model and backend != "tinker":
        raise at.error((*path, "tinker_model"), "tinker_model names the model on the Tinker service: "
                                                "it needs backend: tinker")
    if not isinstance(tinker_model, str):
        raise at.error((*path, "tinker_model"), f"expected a Tinker model name such as meta-llama/Llama-3.2-1B, "
                                                f"got {tinker_model!r}")
    config = config_from(_config_class(kind), item, path, at)
    if backend == "tinker":
        for key, why in TINKER_FIXED.items():
            if key in item and item[key] != getattr(type(config), key, None):
                raise at.error((*path, key), f"{key} is not available with backend: tinker ({why}): remove it")
    return Learner(name, kind, config, auto_learning_rate="learning_rate" not in item, backend=backend,
                   tinker_model=tinker_model)


def _adapters(items: Any, path: tuple[Any, ...], at: Located, base: Path) -> tuple[ExternalAdapter, ...]:
    """Each entry `{path: DIR}`, `{hub: ORG/NAME, revision: REV}` or `{folder: DIR, labels: {SUBDIR: LABEL}}`,
    with an optional `label` (default: the directory's or repository's name), checked to exist."""
    if not isinstance(items, list) or not items:
        raise at.error(path, "expected a non-empty list of adapters, e.g. [{path: adapters/mine, label: gsm8k}]")
    found: list[tuple[ExternalAdapter, tuple[Any, ...]]] = []
    for i, entry in enumerate(items):
        where = (*path, i)
        if not isinstance(entry, dict):
            raise at.error(where, "expected {path: DIR, label: L}, {hub: ORG/NAME, label: L} or {folder: DIR}")
        kinds = [k for k in ("path", "hub", "folder") if k in entry]
        if len(kinds) != 1:
            raise at.error(where, "give exactly one of path (a PEFT directory), hub (an id in the local Hugging "
                                  "Face cache) or folder (a directory of adapter directories)")
        kind = kinds[0]
        check_keys(entry, {kind, "labels"} if kind == "folder" else {kind, "label", *(("revision",) * (kind == "hub"))},
                   where, at)
        value = entry[kind]
        if not isinstance(value, str) or not value:
            raise at.error((*where, kind), f"expected a {'hub id' if kind == 'hub' else 'directory'}, got {value!r}")
        try:
            if kind == "folder":
                labels = entry.get("labels") or {}
                if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
                    raise at.error((*where, "labels"), "expected a mapping of subdirectory to label")
                folder = _local(value, base)
                found += [(ExternalAdapter(label, str(p), str(p)), (*where, "labels")) for label, p in
                          folder_adapters(folder, {str(k): v for k, v in labels.items()})]
                continue
            if kind == "hub":
                revision = entry.get("revision")
                directory = hub_snapshot(value, str(revision) if revision else None)
                source = f"hub:{value}" + (f"@{revision}" if revision else "")
                default = value.rsplit("/", 1)[-1]
            else:
                directory, source = _local(value, base), value
                default = directory.name
            check_adapter_files(directory, f"adapter {source}")
        except TransferlabError as err:
            raise at.error((*where, kind), str(err)) from None
        found.append((ExternalAdapter(entry.get("label", default), source, str(directory)), (*where, "label")))
    seen: dict[str, str] = {}
    for adapter, where in found:
        if not isinstance(adapter.label, str) or not NAME.match(adapter.label):
            raise at.error(where, f"a label is a task or domain name (letters, digits, _ . -), got {adapter.label!r}")
        if adapter.label in seen:
            raise at.error(where, f"adapters {seen[adapter.label]} and {adapter.source} are both labelled "
                                  f"{adapter.label!r}: the label is their row of the matrix, so give them different "
                                  "labels or put them in separate learners")
        seen[adapter.label] = adapter.source
    return tuple(a for a, _ in found)


def _local(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()
