"""A Hub dataset id (`roneneldan/TinyStories`): its data files as `datasets` resolves them, read by our formats.

`datasets.load_dataset_builder` lists the repository's data files by the same rules as a local folder (its
README's `configs`, else the `data/{split}-*` shards, else split names in file and folder names) at a fixed
commit; the files are then downloaded (into the huggingface_hub cache) and read by the format modules here,
so a Hub source is normalised exactly like a local copy. The commit is part of every file's address, so
the cache follows the repository. The list is kept beside the datasets cache: offline (HF_HUB_OFFLINE=1) a
dataset read online before is read again from it, with exactly the same files.
"""
import json
import os
import tempfile
from pathlib import Path

import datasets

from ..errors import TinyStoriesError, flag, reason
from ..utils.hub_access import require_hub
from ..utils.json_files import Each, read_json


def _local_copy() -> str:
    return f"pass a local copy with {flag('source', 'PATH')} or try {flag('source', 'demo')}"


def _offline_fix() -> str:
    return f"{_local_copy()}, or set HF_HUB_OFFLINE=1 to use a copy already in the Hugging Face cache"


def _offline() -> bool:
    import huggingface_hub.constants

    return bool(huggingface_hub.constants.HF_HUB_OFFLINE or datasets.config.HF_HUB_OFFLINE)


def _listing(repo_id: str, cache_dir) -> Path:
    root = Path(cache_dir or datasets.config.HF_DATASETS_CACHE).expanduser()
    return root / "tinystories_sources" / "hub" / f"{repo_id.replace('/', '--')}.json"


def data_files(repo_id: str, *, cache_dir=None) -> dict:
    """`{split: [hf:// file urls at a commit]}` of the dataset's default configuration.

    Example:
        >>> data_files("roneneldan/TinyStories")["validation"]  # doctest: +SKIP
        ['hf://datasets/roneneldan/TinyStories@f54c09f.../data/validation-00000-of-00001-869c898b519ad725.parquet']
    """
    listing = _listing(repo_id, cache_dir)
    if _offline():
        if listing.is_file():  # checked as every file read back: {split: [file url, ...]}
            return read_json(listing, Each([str]), fix="run once online to list the files again")
        raise TinyStoriesError(f"could not load Hub dataset {repo_id!r} (offline: HF_HUB_OFFLINE=1, and it was never "
                               f"read online with this cache: {listing} is missing); run once online, or "
                               f"{_local_copy()}")
    require_hub(f"could not load Hub dataset {repo_id!r}", _offline_fix())
    try:
        builder = datasets.load_dataset_builder(repo_id, cache_dir=cache_dir)
    except (ConnectionError, OSError, datasets.exceptions.DatasetNotFoundError) as e:
        raise download_error(repo_id, e) from None
    except ValueError as e:  # "Config name is missing": several configs, none of them the default
        raise TinyStoriesError(f"could not load Hub dataset {repo_id!r}: {reason(e)}; download the files of one "
                               f"config and pass them with {flag('source', 'PATH')}") from None
    files = {str(split): [str(p) for p in paths] for split, paths in (builder.config.data_files or {}).items()}
    if not files:
        raise TinyStoriesError(f"could not load Hub dataset {repo_id!r}: datasets lists no data files for it (a "
                               f"dataset built by a script?); pass a local copy with {flag('source', 'PATH')}")
    listing.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=listing.parent, delete=False, suffix=".tmp", encoding="utf-8") as f:
        json.dump(files, f, indent=1)
    os.replace(f.name, listing)
    return files


def download_error(repo_id: str, error: Exception) -> TinyStoriesError:
    return TinyStoriesError(f"could not load Hub dataset {repo_id!r} ({reason(error)}); {_offline_fix()}")
