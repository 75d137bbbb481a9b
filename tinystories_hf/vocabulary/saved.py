"""The saved form of a vocabulary: `tinystories_vocab.json` beside the base tokenizer's own file, and the
checks a folder made elsewhere passes before any of it is used (it is untrusted input: a Hub repository, a
copied folder). `TinyStoriesTokenizer.save_pretrained` writes it; `read_saved` reads it back.
"""
import os
from pathlib import Path

from ..errors import TinyStoriesError
from ..utils.json_files import Check, Nullable, in_range, non_negative, read_json
from .base import load_base_tokenizer
from .encoders import id_space
from .gpt2 import tokenizer_sha256

VOCAB_FILE = "tinystories_vocab.json"
BASE_DIR = "base"
FORMATS = ("tinystories-hf-vocab/1", "tinystories-hf-vocab/2")  # 2 adds full vocabularies and their specials
FORMAT = FORMATS[-1]
REDUCED, FULL = "reduced", "full"
# Where the base tokenizer lives in a tokenizer folder: a reduced one's under base/ (transformers can open it
# there, AutoTokenizer.from_pretrained(".../base")); a full tokenizer.json at the top, for AutoTokenizer.
BASE_FILES = {"base/tokenizer.json", "tokenizer.json", "base/tokenizer.model"}
_SPECIAL = Nullable(Check(int, lambda i: i >= 0, "an id >= 0"))
VOCAB_SCHEMA = {"format": str, "vocab_size": in_range(3, 2**32),
                "base_ids": Nullable([Check(int, lambda i: i >= -1, "an id >= -1")]),
                "counts?": (list, type(None)), "meta?": (dict, type(None)), "vocabulary?": str,
                "eos_id?": _SPECIAL, "bos_id?": _SPECIAL, "unk_id?": _SPECIAL, "separator_id?": _SPECIAL,
                "base_file?": Check(str, lambda v: v in BASE_FILES, f"one of {', '.join(sorted(BASE_FILES))}"),
                "base_tokenizer": {"sha256": str, "vocab_size?": non_negative()}}


def _table_problem(data: dict, base_size: int) -> str | None:
    """What is wrong with a saved reduced id -> base id table, checked before it indexes anything (an id of
    10**12, a second UNK, a count per id missing), or None."""
    ids, counts = data["base_ids"], data.get("counts")
    if ids is None:  # a full vocabulary: the base's own ids
        if data["vocab_size"] != base_size:
            return f"records vocab_size {data['vocab_size']} for a base tokenizer of {base_size} ids"
        if any(data.get(key) is not None and data[key] >= base_size for key in ("eos_id", "bos_id", "unk_id")):
            return f"names a special id outside the base tokenizer's [0, {base_size})"
        if counts is not None and len(counts) != base_size:
            return "holds counts that are not one integer >= 0 per id"
        return None
    if len(ids) != data["vocab_size"]:
        return f"holds {len(ids)} base_ids for vocab_size {data['vocab_size']}"
    if ids[1] != -1:
        return f"maps UNK (id 1) to base id {ids[1]}, not -1"
    if not (ids[0] == -1 or 0 <= ids[0] < base_size):
        return f"maps EOS to base id {ids[0]}"
    if any(not 0 <= i < base_size for i in ids[2:]):
        return f"has a base id outside the base tokenizer's [0, {base_size})"
    if len(set(ids[2:])) != len(ids) - 2:
        return "lists a base id twice"
    if counts is not None and (len(counts) != len(ids) or
                               any(not isinstance(c, int) or isinstance(c, bool) or c < 0 for c in counts)):
        return "holds counts that are not one integer >= 0 per id"
    return None


def read_saved(directory) -> tuple:
    """(the `tinystories_vocab.json` data, the base tokenizer) of a tokenizer folder, or of a prepared folder
    (`DIR/tokenizer`), each checked: the schema, the format, the base file (a plain name of `BASE_FILES` inside
    the folder) and its sha256, the id table. Raises `TinyStoriesError` naming the file and the fix."""
    directory = Path(directory)
    if not os.path.lexists(directory / VOCAB_FILE) and (directory / "tokenizer" / VOCAB_FILE).exists():
        directory = directory / "tokenizer"
    path = directory / VOCAB_FILE
    if not os.path.lexists(path):
        # Name the file where a prepared folder holds it, unless this looks like a tokenizer folder itself.
        tokenizer_folder = (directory / BASE_DIR).is_dir() or directory.name == "tokenizer"
        missing = path if tokenizer_folder else directory / "tokenizer" / VOCAB_FILE
        raise TinyStoriesError(f"{missing}: not found; pass a folder written by tinystories-prepare (run it "
                               "first) or a tokenizer folder written by save_pretrained")
    fix = "re-create it with tinystories-prepare"
    data = read_json(path, VOCAB_SCHEMA, fix=fix)
    if data["format"] not in FORMATS:
        raise TinyStoriesError(f"{path}: unknown format {data['format']!r} (expected {FORMAT})")
    base_file = directory / data.get("base_file", f"{BASE_DIR}/tokenizer.json")
    if not base_file.is_file():  # else its loader would try the Hub by name
        raise TinyStoriesError(f"{base_file}: missing or not a regular file; {fix}")
    base = load_base_tokenizer(str(base_file))
    if tokenizer_sha256(base) != data["base_tokenizer"]["sha256"]:
        raise TinyStoriesError(f"{base_file}: base tokenizer differs from the one the vocabulary "
                               "was built with; re-create the folder with tinystories-prepare")
    if data["base_ids"] is None and data.get("vocabulary") != FULL or \
            data["base_ids"] is not None and data.get("vocabulary", REDUCED) != REDUCED:
        raise TinyStoriesError(f"{path}: 'vocabulary' is {data.get('vocabulary')!r} but base_ids is "
                               f"{'null' if data['base_ids'] is None else 'a table'}; {fix}")
    problem = _table_problem(data, id_space(base))
    if problem:
        raise TinyStoriesError(f"{path}: {problem}; {fix}")
    return data, base
