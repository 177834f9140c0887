"""One split of one hub dataset: where it is, whether it is here, and reading it.

A `HubSplit` names a dataset the way the hub does (id, config, split) with the columns a
task reads and the split's published size. `read` returns its rows, from the cached
snapshot when there is one (`cache`), else through `datasets.load_dataset(hub_id, ...)`,
which downloads it, or, offline, finds what an earlier online load prepared. Every way of
failing is one line that names the dataset: missing here (with the command that fetches
it), a config or split the dataset no longer has, a column it lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferlab.errors import TransferlabError, missing_package
from transferlab.tasks.hub import cache

SHAPE_FIX = ("the dataset has changed shape since transferlab's hub loaders were written "
             "(src/transferlab/tasks/hub): update them, or cache the revision they expect")


class HubDataError(TransferlabError):
    """A hub dataset that is not here, or not in the shape its task reads."""


@dataclass(frozen=True)
class HubSplit:
    """A split of a hub dataset as one task uses it.

    `role` is the task split it fills (train, dev or test), `size` the number of rows the
    hub publishes for it, `columns` the fields the task reads (checked before any row is).
    """

    role: str
    hub_id: str
    config: str | None
    split: str
    size: int
    columns: tuple[str, ...] = field(default=(), compare=False)

    def where(self) -> str:
        """`openai/gsm8k (config main, split test)`: how errors name this split."""
        return f"{self.hub_id} ({'config ' + self.config + ', ' if self.config else ''}split {self.split})"


def usable_snapshot(hub_id: str, config: str | None) -> Path | None:
    """The cached snapshot when it holds a file for every split the config declares
    (`datasets` prepares them all); None when it is missing or partial."""
    root = cache.snapshot(hub_id)
    if root is None:
        return None
    shape = cache.layout(root)
    name = shape.config_name(config)
    if name is None:
        return root  # not a config of the cached dataset: reading it says so
    splits = shape.configs[name]
    return root if splits and all(shape.files(root, name, s) for s in splits) else None


def is_cached(hub_id: str, config: str | None) -> bool:
    """Whether `read` can work without the network: a usable snapshot or prepared tables."""
    return usable_snapshot(hub_id, config) is not None or cache.prepared(hub_id)


def missing(who: str, source: HubSplit) -> HubDataError:
    command = cache.download_command(source.hub_id)
    if cache.offline():
        return HubDataError(
            f"{who}: the dataset {source.where()} is not in the local Hugging Face cache ({cache.hub_cache()}) "
            f"and HF_HUB_OFFLINE forbids downloading it: run `{command}` where the hub is reachable (with the "
            "same HF_HOME), or unset HF_HUB_OFFLINE to download it on first use")
    return HubDataError(
        f"{who}: cannot reach the hub ({cache.endpoint()}) to download the dataset {source.where()}, and it is "
        "not in the local Hugging Face cache "
        f"({cache.hub_cache()}): run `{command}` where the hub is reachable (with the same HF_HOME), "
        "then set HF_HUB_OFFLINE=1 here")


def _check_shape(who: str, source: HubSplit, root: Path) -> None:
    """Config and split as the snapshot's README declares them (only a declared layout can be wrong)."""
    shape = cache.layout(root)
    name = shape.config_name(source.config)
    if name is None:
        raise HubDataError(f"{who}: the dataset {source.hub_id} has no config {source.config!r} (it has: "
                           f"{', '.join(shape.configs)}): {SHAPE_FIX}")
    if shape.declared and source.split not in shape.configs[name]:
        raise HubDataError(f"{who}: the dataset {source.hub_id} (config {name}) has no split {source.split!r} "
                           f"(it has: {', '.join(shape.configs[name])}): {SHAPE_FIX}")


def _load(who: str, source: HubSplit) -> Any:
    try:
        import datasets
    except ImportError:
        raise missing_package("datasets", f"the hub task {who}", "pip install 'transferlab[hub]'") from None
    datasets.disable_progress_bars()
    root = usable_snapshot(source.hub_id, source.config)
    if root is not None:
        _check_shape(who, source, root)
        path, config = str(root), cache.layout(root).config_name(source.config)
    elif not cache.prepared(source.hub_id) and (cache.offline() or not cache.hub_reachable()):
        raise missing(who, source)  # before `datasets` tries, and retries, the network
    else:
        path, config = source.hub_id, source.config
    try:
        # One cache folder per dataset: `datasets` names the tables of a local folder by the folder's
        # name (a revision) and its files' names, which two datasets can share.
        where = cache.datasets_cache() / ("hub--" + source.hub_id.replace("/", "--")) if root is not None else None
        return datasets.load_dataset(path, config, split=source.split,
                                     cache_dir=str(where or cache.datasets_cache()))
    except ValueError as err:  # an unknown split or config, in the words of `datasets`
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "split" in text.lower() or "config" in text.lower():
            raise HubDataError(f"{who}: the dataset {source.where()}: {text[:300]}: {SHAPE_FIX}") from None
        raise HubDataError(f"{who}: cannot read the dataset {source.where()}: {text[:300]}") from None
    except (ConnectionError, OSError) as err:
        if root is None:
            raise missing(who, source) from None
        raise HubDataError(f"{who}: cannot read the cached dataset {source.where()} in {root}: "
                           f"{str(err)[:200]}; download it again with `{cache.download_command(source.hub_id)}`"
                           ) from None
    except Exception as err:  # `datasets` wraps what went wrong (a file whose columns differ, say)
        cause = err
        while cause.__cause__ is not None or cause.__context__ is not None:
            cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
        text = " ".join(str(cause).split())[:300]
        raise HubDataError(f"{who}: the dataset {source.where()}: cannot read it: {type(cause).__name__}: {text}: "
                           f"{SHAPE_FIX}") from None


def read(who: str, source: HubSplit) -> tuple[list[dict[str, Any]], str | None]:
    """(rows with the declared columns, the snapshot revision or None) of one hub split.

    `who` names the task or dataset that asks, for the error messages.
    """
    data = _load(who, source)
    have = list(data.column_names)
    lacking = [c for c in source.columns if c not in have]
    if lacking:
        raise HubDataError(f"{who}: the dataset {source.where()} has no column {lacking[0]!r} "
                           f"(columns: {', '.join(have)}): {SHAPE_FIX}")
    if source.columns:
        data = data.select_columns(list(source.columns))
    root = usable_snapshot(source.hub_id, source.config)
    return data.to_list(), (root.name if root is not None else None)


def bad_row(who: str, source: HubSplit, index: int, err: Exception) -> HubDataError:
    """A row the task cannot read: which dataset, split, row and field, never a silent zero."""
    if isinstance(err, KeyError):
        problem = f"has no field {err.args[0]!r}"
    else:
        problem = str(err) or type(err).__name__
    return HubDataError(f"{who}: the dataset {source.where()}, row {index}: {problem[:300]}: {SHAPE_FIX}")


def availability(sources: Sequence[HubSplit]) -> str:
    """"cached" when every dataset the sources name is here, else "download: <command>" for each
    one that is not (joined by &&); reads directory listings only."""
    repos = dict.fromkeys((s.hub_id, s.config) for s in sources)
    absent = dict.fromkeys(hub_id for hub_id, config in repos if not is_cached(hub_id, config))
    if not absent:
        return "cached"
    return "download: " + " && ".join(cache.download_command(hub_id) for hub_id in absent)
