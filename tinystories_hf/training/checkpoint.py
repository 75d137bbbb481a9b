"""A training run's checkpoint as safetensors and JSON only (nothing pickled, nothing read through torch's pickle loader):

    RUN/checkpoint/model.safetensors      the weights (`safetensors.torch.save_model`: tied weights once)
    RUN/checkpoint/state.safetensors      AdamW moments and step counts ("optimizer.<param>.<key>") and the
                                          RNG states ("rng.cpu", "rng.cuda.<device>"), exact bytes
    RUN/checkpoint/trainer_state.json     step, the sampler's state, the options that shape the run, the model
                                          config, the optimizer's param groups, best validation loss

The folder is written to a temporary folder and moved into place (`utils/atomic.py`), so a run killed while
saving keeps the previous checkpoint whole.
"""
import json
from pathlib import Path

import safetensors.torch

from ..errors import TinyStoriesError, flag
from ..utils.atomic import atomic_folder
from ..utils.extras import require
from ..utils.json_files import Nullable, read_json

torch = require("torch", extra="torch", needed_by=__name__)

CHECKPOINT_DIR = "checkpoint"
FORMAT = 1
STATE_SCHEMA = {"format": int, "step": int, "epoch": int, "sampler": dict, "options": dict, "model_config": dict,
                "param_groups": list, "best_val_loss": Nullable(float), "tokens": int}


def optimizer_tensors(optimizer) -> tuple:
    """`({name: tensor}, param_groups)` of a torch optimizer's state dict, the tensors flat for safetensors."""
    state = optimizer.state_dict()
    tensors = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            tensors[f"optimizer.{index}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return tensors, state["param_groups"]


def load_optimizer(optimizer, tensors: dict, param_groups: list) -> None:
    """Give `optimizer` the state `optimizer_tensors` took apart."""
    state = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})


def rng_tensors() -> dict:
    """The torch RNG states (CPU and every CUDA device) as uint8 tensors."""
    tensors = {"rng.cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, rng in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = rng
    return tensors


def set_rng(tensors: dict) -> None:
    torch.set_rng_state(tensors["rng.cpu"])
    cuda = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])


def save_checkpoint(run: Path, *, model, optimizer, rng: dict, state: dict) -> None:
    """Write RUN/checkpoint/ whole (replacing the previous one); `rng` as `rng_tensors()` took it."""
    tensors, param_groups = optimizer_tensors(optimizer)
    with atomic_folder(run / CHECKPOINT_DIR, overwrite=True) as partial:
        partial.mkdir()
        safetensors.torch.save_model(model, str(partial / "model.safetensors"))
        safetensors.torch.save_file({**tensors, **rng}, str(partial / "state.safetensors"))
        state = dict(state, format=FORMAT, param_groups=param_groups)
        (partial / "trainer_state.json").write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")


def read_checkpoint(run: Path) -> tuple:
    """`(trainer_state dict, state tensors)` of RUN/checkpoint/, checked; raises `TinyStoriesError` if missing."""
    folder = run / CHECKPOINT_DIR
    if not (folder / "trainer_state.json").is_file():
        raise TinyStoriesError(f"{folder}: no checkpoint to resume; run without {flag('resume', True)} to start")
    state = read_json(folder / "trainer_state.json", STATE_SCHEMA, fix=f"start again without {flag('resume', True)}")
    if state["format"] != FORMAT:
        raise TinyStoriesError(f"{folder}: checkpoint format {state['format']}, this version reads {FORMAT}")
    try:
        tensors = safetensors.torch.load_file(str(folder / "state.safetensors"))
    except (OSError, safetensors.SafetensorError) as e:
        raise TinyStoriesError(f"{folder / 'state.safetensors'}: cannot be read ({e}); start again without "
                               f"{flag('resume', True)}") from None
    return state, tensors


def load_weights(model, run: Path) -> None:
    """The checkpoint's weights into `model` (strict: every tensor, same shapes)."""
    path = run / CHECKPOINT_DIR / "model.safetensors"
    try:
        missing, unexpected = safetensors.torch.load_model(model, str(path), strict=False)
    except (OSError, RuntimeError, safetensors.SafetensorError) as e:
        raise TinyStoriesError(f"{path}: does not fit this model ({str(e).splitlines()[0]}); resume with the "
                               "options the run started with") from None
    if missing or unexpected:
        raise TinyStoriesError(f"{path}: tensors {sorted(missing or unexpected)[:3]} differ from this model's; "
                               "resume with the options the run started with")
