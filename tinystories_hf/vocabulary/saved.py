"""The saved form of a vocabulary: `tinystories_vocab.json` beside the base tokenizer's own file, and the
checks a folder made elsewhere passes before any of it is used (it is untrusted input: a Hub repository, a
copied folder). `TinyStoriesTokenizer.save_pretrained` writes it; `read_saved` reads it back, from its data
only: the `tokenization_tinystories.py` a folder holds (for transformers' `trust_remote_code=True` users) is
never imported by this package, only compared with the package's own (`module_differs`).
"""
import os
from pathlib import Path

from ..errors import TinyStoriesError
from ..utils.json_files import Check, Nullable, in_range, non_negative, read_json
from .encoders import id_space
from .gpt2 import tokenizer_sha256
from .sentencepiece_base import MODEL_SUFFIX, SentencePieceTokenizer

VOCAB_FILE = "tinystories_vocab.json"
REMOTE_MODULE = "tokenization_tinystories"  # saved beside a vocabulary tokenizer.json cannot express
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


def load_tokenizer_file(file) -> object:
    """A base tokenizer from its file: a SentencePiece `.model` (protobuf) or a `tokenizer.json`, read here (an
    OS fault names the file) and parsed from its data. Raises `TinyStoriesError` for a file of neither kind."""
    from tokenizers import Tokenizer

    file = Path(file)
    if file.suffix == MODEL_SUFFIX:
        return SentencePieceTokenizer.from_file(file)
    data = file.read_bytes()
    try:
        return Tokenizer.from_str(data.decode("utf-8"))
    except Exception as e:  # noqa: BLE001 -- tokenizers raises a bare Exception for malformed files
        raise TinyStoriesError(f"{file}: not a valid tokenizer.json ({str(e).splitlines()[0]}); "
                               "re-save it with tokenizer.save_pretrained") from None


def own_folder(path) -> Path | None:
    """The tinystories-hf tokenizer folder `path` is (it holds `tinystories_vocab.json`) or holds (a prepared or
    pushed folder's `tokenizer/`), else None: such a folder is loaded from its data by `read_saved`, never
    through transformers (which would offer to run its `tokenization_tinystories.py`)."""
    path = Path(path).expanduser()
    for folder in (path, path / "tokenizer"):
        if folder.is_dir() and os.path.lexists(folder / VOCAB_FILE):
            return folder
    return None


def own_module() -> bytes:
    """The bytes of this package's `tokenization_tinystories.py`, the only module a tokenizer folder may hold."""
    return Path(__file__).with_name(f"{REMOTE_MODULE}.py").read_bytes()


def module_differs(folder) -> bool:
    """True when the tokenizer folder holds a `tokenization_tinystories.py` other than this package's own (the
    code `AutoTokenizer.from_pretrained(..., trust_remote_code=True)` would run: replaced, it runs anything)."""
    module = Path(folder) / f"{REMOTE_MODULE}.py"
    if not os.path.lexists(module):
        return False
    return module.is_symlink() or not module.is_file() or module.read_bytes() != own_module()


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
    base = load_tokenizer_file(base_file)
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
