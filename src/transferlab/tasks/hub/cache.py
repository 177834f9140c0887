"""Where Hugging Face keeps data on this machine, read at call time, and what a snapshot holds.

`datasets.load_dataset(hub_id, ...)` finds a dataset offline only in its own prepared cache
(HF_DATASETS_CACHE, filled by an earlier online load); it never reads the hub cache that
`hf download --repo-type dataset ID` (or any online load) fills, `HF_HUB_CACHE/datasets--org--name/
snapshots/<rev>/`. So the hub tasks look there first and hand `load_dataset` the snapshot
directory itself, which it reads like the hub repository it is (its README's `configs:`).

Everything here reads only directory listings and the README's YAML header: no network,
no data. Paths and flags come from the environment on every call (HF_HOME, HF_HUB_CACHE,
HF_DATASETS_CACHE, HF_HUB_OFFLINE), so a changed environment is honoured at once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

DATA_SUFFIXES = (".parquet", ".jsonl", ".json", ".csv", ".tsv", ".arrow", ".txt")
_NOT_DATA = {"README.md", "dataset_infos.json", "dataset_dict.json", "state.json"}
# Split names `datasets` infers from file and folder names when a README declares no configs.
SPLIT_KEYWORDS = {"train": ("train", "training"), "validation": ("validation", "valid", "dev", "val"),
                  "test": ("test", "testing", "eval", "evaluation")}
_TRUE = {"1", "ON", "YES", "TRUE"}


def offline() -> bool:
    """Whether the user forbade network access to the hub (HF_HUB_OFFLINE or HF_DATASETS_OFFLINE)."""
    return any(os.environ.get(v, "").strip().upper() in _TRUE for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"


def hub_reachable() -> bool:
    """Whether the hub's host takes a connection (asked once per process and endpoint): without
    this, a machine with no network waits out the hub client's retries (~25 s) for every dataset.
    Behind a proxy only the hub client can tell, so it is asked."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")):
        return True
    return _reachable(endpoint())


@lru_cache(maxsize=8)
def _reachable(url: str) -> bool:
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=3):
            return True
    except OSError:
        return False


def hf_home() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "huggingface"
    return Path(os.environ.get("HF_HOME") or default).expanduser()


def hub_cache() -> Path:
    """The hub's file cache (what `hf download` and online loads fill)."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    return Path(explicit).expanduser() if explicit else hf_home() / "hub"


def datasets_cache() -> Path:
    """Where `datasets` keeps the Arrow tables it prepares."""
    explicit = os.environ.get("HF_DATASETS_CACHE")
    return Path(explicit).expanduser() if explicit else hf_home() / "datasets"


def download_cli() -> str:
    """The hub's command line: `hf` since huggingface_hub 1.0 removed `huggingface-cli`."""
    try:
        from importlib.metadata import version

        return "hf" if int(version("huggingface_hub").split(".")[0]) >= 1 else "huggingface-cli"
    except Exception:  # not installed: the current name
        return "hf"


def download_command(hub_id: str) -> str:
    return f"{download_cli()} download --repo-type dataset {hub_id}"


def snapshot(hub_id: str) -> Path | None:
    """The cached snapshot of a dataset repository: the one refs/main points at, else the newest."""
    repo = hub_cache() / ("datasets--" + hub_id.replace("/", "--"))
    ref = repo / "refs" / "main"
    if ref.is_file():
        pinned = repo / "snapshots" / ref.read_text().strip()
        if pinned.is_dir():
            return pinned
    found = [p for p in (repo / "snapshots").glob("*") if p.is_dir()] if (repo / "snapshots").is_dir() else []
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def prepared(hub_id: str) -> bool:
    """Whether `datasets` holds Arrow tables of this dataset from an earlier online load (its
    offline fallback, `CachedDatasetModuleFactory`, looks in the same place)."""
    namespace, _, name = hub_id.rpartition("/")
    name = re.sub(r"([a-z\d])([A-Z])", r"\1_\2", re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)).lower()
    root = datasets_cache() / "___".join(filter(None, (namespace, name)))
    return any(p.is_dir() for p in root.glob("*/*/*")) if root.is_dir() else False


@dataclass(frozen=True)
class Layout:
    """The configs of a snapshot, each a mapping split -> file patterns, as its README declares
    them (`declared`) or as `datasets` infers them from file names when it declares none."""

    configs: dict[str, dict[str, tuple[str, ...]]]
    default: str | None
    declared: bool

    def config_name(self, config: str | None) -> str | None:
        """The config a request names (None: the default one), or None when there is no such config."""
        if config is None:
            return self.default
        return config if config in self.configs else None

    def files(self, root: Path, config: str, split: str) -> list[Path]:
        return sorted({p for pattern in self.configs[config].get(split, ()) for p in root.glob(pattern)
                       if p.is_file() and p.name not in _NOT_DATA})


def _front_matter(readme: Path) -> dict:
    if not readme.is_file():
        return {}
    text = readme.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return {}
    header = text[3:].split("\n---", 1)[0]
    try:
        data = yaml.safe_load(header)
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _patterns(data_files: object) -> dict[str, tuple[str, ...]]:
    """`data_files` in any of the README's forms: a pattern, a list, or a list of {split, path}."""
    if isinstance(data_files, str):
        return {"train": (data_files,)}
    out: dict[str, list[str]] = {}
    for item in data_files if isinstance(data_files, list) else []:
        if isinstance(item, str):
            out.setdefault("train", []).append(item)
        elif isinstance(item, dict) and "split" in item:
            paths = item.get("path", [])
            out.setdefault(str(item["split"]), []).extend([paths] if isinstance(paths, str) else list(paths))
    return {split: tuple(p) for split, p in out.items()}


def _inferred(root: Path, under: str = "") -> dict[str, tuple[str, ...]]:
    """Splits from file and folder names (`test.jsonl`, `data/train-00000-of-00001.parquet`);
    all files are `train` when none is named after a split, as `datasets` does."""
    base = root / under if under else root
    files = [p for p in base.rglob("*") if p.is_file() and p.suffix in DATA_SUFFIXES and p.name not in _NOT_DATA
             and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    splits: dict[str, list[str]] = {}
    for path in files:
        relative = path.relative_to(root)
        words = [part.lower() for part in relative.parent.parts] + [relative.name.lower()]
        for split, keywords in SPLIT_KEYWORDS.items():
            if any(re.match(rf"{k}(?:[-._ 0-9]|$)", w) for k in keywords for w in words):
                splits.setdefault(split, []).append(str(relative))
                break
    if not splits and files:
        splits["train"] = [str(p.relative_to(root)) for p in files]
    return {split: tuple(sorted(paths)) for split, paths in splits.items()}


@lru_cache(maxsize=256)
def _layout(root: Path, stamp: float) -> Layout:
    configs_meta = _front_matter(root / "README.md").get("configs")
    if isinstance(configs_meta, list) and configs_meta:
        configs: dict[str, dict[str, tuple[str, ...]]] = {}
        default = None
        for entry in configs_meta:
            if not isinstance(entry, dict):
                continue
            name = str(entry.get("config_name", "default"))
            if "data_files" in entry:
                configs[name] = _patterns(entry["data_files"])
            else:
                configs[name] = _inferred(root, str(entry.get("data_dir", "")))
            if entry.get("default") or (default is None and name == "default"):
                default = name
        if default is None and len(configs) == 1:
            default = next(iter(configs))
        return Layout(configs, default, True)
    return Layout({"default": _inferred(root)}, "default", False)


def layout(root: Path) -> Layout:
    """The configs and split files of a snapshot directory (cached until its README changes)."""
    readme = root / "README.md"
    return _layout(root, readme.stat().st_mtime if readme.exists() else 0.0)
