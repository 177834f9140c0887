"""From a Tinker training run to a PEFT adapter for the local model, with tinker-cookbook's `weights`.

What runs where: the training steps run on the service (`learn.tinker.TinkerTrainer`); when
they finish, the run's weights are saved three ways on the service (sampler weights for its
sampling client, the training state for sequential training, and external weights, the
exportable copy); the external weights are downloaded here (`weights.download`: the REST
client's signed URL of each file of the checkpoint) and converted to a PEFT adapter for the
local model (`weights.build_lora_adapter`: Tinker's key names to the model's module names,
`unembed_tokens` to `lm_head`, a PEFT adapter_config.json). The local engine then evaluates
it like any other adapter.

A checkpoint in the service's format is a directory with `adapter_model.safetensors`
(keys `base_model.model.model.layers.N.<module>.lora_A.weight`, shape (r, in), and
`lora_B.weight`, shape (out, r), unscaled) and `adapter_config.json` (`r`, `lora_alpha`).

    from transferlab.learn.tinker_weights import convert_checkpoint
    convert_checkpoint("downloaded/", "~/.cache/transferlab/models/smollm2-135m", "adapter/", "smollm2-135m")
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from transferlab.errors import TransferlabError, missing_package
from transferlab.learn.tinker import TinkerRun, TinkerTrainer, api_key, import_tinker
from transferlab.tasks.base import Example, Task

COOKBOOK_INSTALL = "pip install --no-deps tinker-cookbook==0.6.1"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def import_weights() -> Any:
    """tinker-cookbook's `weights` module, or a one-line error saying how to install it."""
    try:
        from tinker_cookbook import weights
    except ImportError:
        raise missing_package("tinker-cookbook", "converting Tinker checkpoints to PEFT adapters",
                              COOKBOOK_INSTALL) from None
    return weights


def check_ready() -> None:
    """Everything a `backend: tinker` learner needs here, checked before any work: the SDK,
    the weights helpers and TINKER_API_KEY (each missing one is a one-line error)."""
    import_tinker()
    import_weights()
    api_key()


def convert_checkpoint(checkpoint: str | Path, model_dir: str | Path, out: str | Path, base_name: str) -> Path:
    """Write into `out` the PEFT adapter (adapter_config.json + adapter_model.safetensors) of a
    downloaded Tinker checkpoint, for the model in `model_dir` (its config.json and safetensors
    name the modules); the config records `base_name` as its base model, as our own adapters do."""
    weights = import_weights()
    from tinker_cookbook.exceptions import WeightsAdapterError

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".convert-") as scratch:
        built = Path(scratch) / "peft"
        try:
            weights.build_lora_adapter(base_model=str(Path(model_dir).expanduser()), adapter_path=str(checkpoint),
                                       output_path=str(built))
        except (WeightsAdapterError, FileNotFoundError, KeyError) as err:
            raise TransferlabError(f"cannot convert the Tinker checkpoint {checkpoint} to a PEFT adapter for "
                                   f"{base_name}: {str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
        config = json.loads((built / "adapter_config.json").read_text())
        config["base_model_name_or_path"] = base_name
        (out / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        shutil.move(str(built / "adapter_model.safetensors"), out / "adapter_model.safetensors")
    return out


def download_checkpoint(tinker_path: str, out: str | Path) -> Path:
    """Download a checkpoint's files from the service (`weights.download`) into `out`."""
    weights = import_weights()
    from tinker_cookbook.exceptions import WeightsDownloadError

    try:
        weights.download(tinker_path=tinker_path, output_dir=str(out))
    except WeightsDownloadError as err:
        raise TransferlabError(f"cannot download {tinker_path} from Tinker: {str(err).splitlines()[0]}") from None
    missing = [n for n in ADAPTER_FILES if not (Path(out) / n).is_file()]
    if missing:
        raise TransferlabError(f"the Tinker checkpoint {tinker_path} has no {', '.join(missing)}: it is not a "
                               "LoRA checkpoint")
    return Path(out)


def local_adapter(run: TinkerRun, model_dir: str | Path, out: str | Path, base_name: str) -> Path:
    """The PEFT adapter of a finished run, downloaded and converted into `out`."""
    if not run.external_path:
        raise TransferlabError("this Tinker run saved no external weights: it cannot be downloaded")
    with tempfile.TemporaryDirectory(prefix="tinker-checkpoint-") as scratch:
        download_checkpoint(run.external_path, scratch)
        return convert_checkpoint(scratch, model_dir, out, base_name)


def train_to_adapter(loaded: Any, model_dir: str | Path, task: Task, examples: Sequence[Example], config: Any,
                     method: str, tinker_model: str, out: str | Path, name: str, init_state: str | None = None,
                     also: Sequence[tuple[Task, Sequence[Example]]] = (),
                     progress: Callable[[int, float], None] | None = None) -> TinkerRun:
    """Train on the service (SFT or GRPO), then write the run's PEFT adapter for `loaded` into `out`.

    The local tokenizer renders the data, so the tokens trained on are the ones the local
    engine evaluates with; `tinker_model` must be the same model as `loaded`.
    """
    trainer = TinkerTrainer(tinker_model, tokenizer=loaded.tokenizer)
    if method == "grpo":
        if also:
            raise TransferlabError("joint GRPO training is not available on Tinker: train the pair locally")
        run = trainer.train_grpo(task, examples, config, name, init_state=init_state, progress=progress)
    else:
        run = trainer.train_sft(task, examples, config, name, init_state=init_state, also=also, progress=progress)
    local_adapter(run, model_dir, out, loaded.name)
    return run
