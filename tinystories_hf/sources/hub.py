"""A Hub dataset id (`roneneldan/TinyStories`): its data files as `datasets` resolves them, read by our formats.

`datasets.load_dataset_builder` lists the repository's data files by the same rules as a local folder (its
README's `configs`, else the `data/{split}-*` shards, else split names in file and folder names) at a fixed
commit; the files are then downloaded and read by the format modules here, so a Hub source is normalised
exactly like a local copy. The commit is part of every file's address, so the cache follows the repository.
"""
import datasets

from ..errors import TinyStoriesError

OFFLINE_FIX = ("if the Hub is unreachable, pass a local copy with --source PATH or try the built-in corpus with "
               "--source demo")


def _reason(error: Exception) -> str:
    return (str(error).splitlines() or [""])[0] or type(error).__name__


def data_files(repo_id: str, *, cache_dir=None) -> dict:
    """`{split: [hf:// file urls]}` of the dataset's default configuration."""
    try:
        builder = datasets.load_dataset_builder(repo_id, cache_dir=cache_dir)
    except (ConnectionError, OSError, datasets.exceptions.DatasetNotFoundError) as e:
        raise TinyStoriesError(f"could not load Hub dataset {repo_id!r} ({_reason(e)}); {OFFLINE_FIX}") from None
    files = builder.config.data_files
    if not files:  # offline, datasets falls back to its cache, which does not list the repository's files
        raise TinyStoriesError(f"could not list the data files of Hub dataset {repo_id!r} (offline or a dataset "
                               f"without data files); {OFFLINE_FIX}")
    return {str(split): list(paths) for split, paths in files.items()}


def download_error(repo_id: str, error: Exception) -> TinyStoriesError:
    return TinyStoriesError(f"could not load Hub dataset {repo_id!r} ({_reason(error)}); {OFFLINE_FIX}")
