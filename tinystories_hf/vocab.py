"""Step 2: the reduced vocabulary, as in the paper: the base BPE restricted to its most frequent tokens.

Reduced ids: 0 is EOS (`<|endoftext|>`, the story separator), 1 is UNK (every dropped token), and
2 .. vocab_size-1 are base tokens by decreasing frequency on a seeded train sample, ties broken by base
id. So a model's embedding has exactly `vocab_size` rows. Fill rule: when the sample holds fewer distinct
tokens than `vocab_size - 2`, the ids after its last seen token go to tokens it never saw (count 0, so
lowest base id first, by the tie rule); they occur in no story of the sample, and `ids_in_sample` counts
the others. Saved as JSON next to the base tokenizer's own
`tokenizer.json`; nothing is pickled.
"""
import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from .base_tokenizer import load_base_tokenizer, make_encoder, special_ids, tokenizer_sha256
from .errors import TinyStoriesError, api_errors, check_int, flag
from .extras import require
from .json_files import Check, in_range, non_negative, read_json
from .mapped_pages import PageReleaser

VOCAB_FILE = "tinystories_vocab.json"
BASE_DIR = "base"
FORMAT = "tinystories-hf-vocab/1"
EOS_ID, UNK_ID = 0, 1
EOS_TOKEN, UNK_TOKEN = "<|endoftext|>", "<|unk|>"
VOCAB_SCHEMA = {"format": str, "vocab_size": in_range(3, 65_537), "base_ids": [Check(int, lambda i: i >= -1, "an id >= -1")],
                "counts?": (list, type(None)), "meta?": (dict, type(None)),
                "base_tokenizer": {"sha256": str, "vocab_size?": non_negative()}}


def count_base_tokens(base_ids, rows, base_vocab_size: int) -> np.ndarray:
    """Token frequencies over the given rows of a dataset's `base_ids` column, with `np.bincount` over the
    flat Arrow values, chunk by chunk. `rows`: sorted row indices, or None for every row.

    Rows are taken from each memory-mapped chunk separately: `ChunkedArray.take` would first concatenate the
    whole column in memory (GBs at full scale)."""
    if base_ids._indices is not None:
        base_ids = base_ids.flatten_indices()
    counts, end, pages = np.zeros(base_vocab_size, dtype=np.int64), 0, PageReleaser()
    for chunk in base_ids.data.column("base_ids").chunks:
        first, end = end, end + len(chunk)
        if rows is not None:
            lo, hi = np.searchsorted(rows, [first, end])
            if lo == hi:
                continue
            read = chunk.take(pa.array(rows[lo:hi] - first))
        else:
            read = chunk
        counts += np.bincount(read.flatten().to_numpy(), minlength=base_vocab_size)[:base_vocab_size]
        pages.read(chunk)  # the whole chunk: reading a few rows maps the pages around them too
    return counts


def sample_rows(num_rows: int, sample_size, seed: int):
    """Sorted row indices of a seeded sample without replacement; None means every row."""
    if sample_size is None or sample_size >= num_rows:
        return None
    return np.sort(np.random.default_rng(seed).choice(num_rows, size=sample_size, replace=False))


def _table_problem(data: dict, base_size: int) -> str | None:
    """What is wrong with a saved reduced id -> base id table, checked before it indexes anything (an id of
    10**12, a second UNK, a count per id missing), or None."""
    ids, counts = data["base_ids"], data.get("counts")
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


def _text(text) -> str:
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, not {type(text).__name__}: {text!r:.40}")
    return text


class TinyStoriesTokenizer:
    """GPT-Neo BPE restricted to `vocab_size` ids: `encode(text)` gives reduced ids, `decode(ids)` text.

    Build one with `prepare()` (or `from_counts`), load a saved one with `from_pretrained(dir)`. Called like a
    transformers tokenizer (`tok(texts, padding=True, return_tensors="pt")`, `batch_decode`) it feeds
    `model.generate`. `transformers.AutoTokenizer` cannot load it: a `tokenizers` BPE merges by the ids of
    every intermediate token, so "GPT-2 BPE, then rare tokens to UNK" has no tokenizer.json form.

    Example:
        >>> tok = TinyStoriesTokenizer.from_pretrained("tinystories_prepared/tokenizer")  # doctest: +SKIP
        >>> ids = tok.encode("Once upon a time")  # doctest: +SKIP
        >>> tok.decode(ids), tok.vocab_size, tok.eos_id, tok.unk_id  # doctest: +SKIP
        ('Once upon a time', 10000, 0, 1)
        >>> batch = tok(["Once upon a time", "The dog"], padding=True, return_tensors="pt")  # doctest: +SKIP
        >>> batch["input_ids"].shape, batch["attention_mask"].tolist()  # doctest: +SKIP
        (torch.Size([2, 4]), [[1, 1, 1, 1], [1, 1, 0, 0]])
    """

    # transformers' names, so code written for a transformers tokenizer reads them: padding uses EOS (GPT-2's
    # convention; the attention mask hides it), there is no separate BOS.
    model_input_names = ("input_ids", "attention_mask")
    pad_token, pad_token_id = EOS_TOKEN, EOS_ID
    bos_token, bos_token_id = EOS_TOKEN, EOS_ID
    eos_token_id, unk_token_id = EOS_ID, UNK_ID
    padding_side = "right"  # set "left" for batched generation with a decoder-only model

    def __init__(self, base_tokenizer, base_ids, counts=None, *, backend: str = "auto", encoder=None, meta=None):
        self.base_tokenizer = base_tokenizer
        self.base_ids = np.asarray(base_ids, dtype=np.int64)  # reduced id -> base id (-1 for UNK)
        self.counts = None if counts is None else np.asarray(counts, dtype=np.int64)
        self.backend = backend
        self.meta = dict(meta or {})
        self.eos_id, self.unk_id = EOS_ID, UNK_ID
        self.eos_token, self.unk_token = EOS_TOKEN, UNK_TOKEN
        base_size = base_tokenizer.get_vocab_size(with_added_tokens=True)
        # base id -> reduced id, UNK by default: one gather (take) remaps a whole batch.
        self.base_to_reduced = np.full(base_size, UNK_ID, dtype=np.uint16)
        # Only ids 2.. are regular tokens: a base EOS id met in text maps to UNK, never to the separator.
        self.base_to_reduced[self.base_ids[2:]] = np.arange(2, len(self.base_ids), dtype=np.uint16)
        self._encoder = encoder

    @property
    def vocab_size(self) -> int:
        return len(self.base_ids)

    @property
    def ids_in_sample(self):
        """Regular ids (2..) whose token occurs in the vocabulary sample, or None when no counts were saved.

        The other `vocab_size - 2 - ids_in_sample` ids are fill (see the module docstring): a vocabulary of
        `ids_in_sample + 2` ids gives the same ids for every story of the sample."""
        return None if self.counts is None else int(np.count_nonzero(self.counts[2:]))

    def __len__(self) -> int:
        return self.vocab_size

    @property
    def encoder(self):
        """The base-id encoder (tiktoken or tokenizers), built on first use."""
        if self._encoder is None:
            self._encoder = make_encoder(self.base_tokenizer, self.backend)
        return self._encoder

    @classmethod
    def from_counts(cls, base_tokenizer, counts, vocab_size: int, *, backend: str = "auto", encoder=None,
                    meta=None):
        """Keep the `vocab_size - 2` most frequent base tokens (ties, and tokens the sample lacks: lower base id
        first)."""
        counts = np.asarray(counts, dtype=np.int64)
        specials = special_ids(base_tokenizer)
        eos_base = base_tokenizer.token_to_id(EOS_TOKEN)  # None for tokenizers without it: EOS is ours
        order = np.lexsort((np.arange(len(counts)), -counts))
        order = order[~np.isin(order, list(specials | {eos_base} - {None}))]
        if len(order) < vocab_size - 2:
            raise TinyStoriesError(f"{flag('vocab_size', vocab_size)} exceeds the base tokenizer's {len(order)} "
                                   "regular tokens + 2 specials; lower it")
        kept = order[: vocab_size - 2]
        base_ids = np.concatenate([[-1 if eos_base is None else eos_base, -1], kept])
        kept_counts = np.concatenate([[0, counts.sum() - counts[kept].sum()], counts[kept]])
        return cls(base_tokenizer, base_ids, kept_counts, backend=backend, encoder=encoder, meta=meta)

    # -- encoding ---------------------------------------------------------------------------------------
    def remap(self, base_ids) -> np.ndarray:
        """Base ids (any integer array) -> reduced uint16 ids."""
        return self.base_to_reduced[np.asarray(base_ids, dtype=np.int64)]

    def encode(self, text: str) -> list:
        """Reduced ids of `text` (no EOS added; `<|endoftext|>` in the text is encoded as plain text). Raises
        `TypeError` for anything but a `str`."""
        return self.encode_batch([_text(text)])[0]

    def encode_batch(self, texts: list) -> list:
        """Reduced ids of each text of a list or tuple of `str`; a single `str` is refused (`TypeError`), not
        encoded character by character."""
        if isinstance(texts, (str, bytes)) or not isinstance(texts, (list, tuple)):
            raise TypeError(f"texts must be a list of strings, not {type(texts).__name__}: {texts!r:.40}; encode "
                            "one text with encode()")
        return [self.remap(ids).tolist() for ids in self.encoder.encode_batch([_text(t) for t in texts])]

    def __call__(self, text, *, padding=False, truncation=None, max_length: int | None = None,
                 return_tensors: str | None = None, return_attention_mask: bool = True,
                 padding_side: str | None = None, add_special_tokens: bool = True):
        """Encode like a transformers tokenizer: a `transformers.BatchEncoding` with `input_ids` (reduced ids, no
        EOS added) and `attention_mask` (1 on tokens, 0 on padding).

        `text`: a string (one sequence) or a list of strings (a batch). `padding`: False, True / "longest",
        or "max_length" (pads with EOS on `padding_side`, default `self.padding_side`). `truncation`: True
        (or "longest_first") cuts at `max_length`; None, the default, does so when `max_length` is given
        without padding, as transformers does. `return_tensors`: None (lists), "pt" (torch) or "np"; a single
        string with tensors gets a batch axis of 1, as in transformers. `add_special_tokens` changes nothing:
        GPT-2's BPE adds no BOS/EOS. Raises `TinyStoriesError` for options it cannot honour (truncation
        without `max_length`, a negative `max_length`, rows of different lengths as one tensor).

        Example:
            >>> tok("Once upon a time")["input_ids"]  # doctest: +SKIP
            [53, 57, 7, 43]
        """
        from transformers import BatchEncoding  # transformers is a dependency; imported only when called

        single = isinstance(text, str)
        if not single and not (isinstance(text, (list, tuple)) and all(isinstance(t, str) for t in text)):
            raise TypeError(f"text must be a string or a list of strings, not {type(text).__name__}: {text!r:.40}")
        if max_length is not None:
            max_length = check_int("max_length", max_length, low=0)
        if padding not in (False, True, "longest", "max_length", "do_not_pad"):
            raise TinyStoriesError(f"padding={padding!r}: use False, True, 'longest' or 'max_length'")
        if truncation is None:  # transformers: max_length without padding means truncation
            truncation = max_length is not None and padding in (False, "do_not_pad")
        if truncation not in (True, False, "longest_first", "only_first", "do_not_truncate"):
            raise TinyStoriesError(f"truncation={truncation!r}: use True, False or 'longest_first'")
        truncation = truncation not in (False, "do_not_truncate")
        if (truncation or padding == "max_length") and max_length is None:
            raise TinyStoriesError("truncation=True and padding='max_length' need max_length=")
        if return_tensors not in (None, "pt", "np"):
            raise TinyStoriesError(f"return_tensors={return_tensors!r}: use None (lists), 'pt' or 'np'")
        if return_tensors == "pt":
            require("torch", extra="torch", needed_by="return_tensors='pt'")
        side = padding_side or self.padding_side
        if side not in ("left", "right"):
            raise TinyStoriesError(f"padding_side={side!r}: use 'left' or 'right'")
        ids = self.encode_batch([text] if single else text)
        if truncation:
            ids = [row[:max_length] for row in ids]
        width = {True: max(map(len, ids), default=0), "longest": max(map(len, ids), default=0),
                 "max_length": max_length}.get(padding)
        masks = [[1] * len(row) for row in ids]
        if width is not None:
            pads = [max(0, width - len(row)) for row in ids]
            if side == "right":
                ids = [row + [self.pad_token_id] * n for row, n in zip(ids, pads)]
                masks = [mask + [0] * n for mask, n in zip(masks, pads)]
            else:
                ids = [[self.pad_token_id] * n + row for row, n in zip(ids, pads)]
                masks = [[0] * n + mask for mask, n in zip(masks, pads)]
        if return_tensors is not None and not single and len(set(map(len, ids))) > 1:
            fix = "truncation=True" if padding == "max_length" else "padding=True"
            raise TinyStoriesError(f"sequences of different lengths cannot form one tensor: pass {fix}")
        data = {"input_ids": ids[0] if single else ids}
        if return_attention_mask:
            data["attention_mask"] = masks[0] if single else masks
        return BatchEncoding(data, tensor_type=return_tensors, prepend_batch_axis=single and bool(return_tensors))

    def batch_decode(self, sequences, *, skip_special_tokens: bool = False) -> list:
        """`decode` of each sequence of a batch (lists, a 2-D array or tensor, e.g. `model.generate`'s output).

        Example:
            >>> tok.batch_decode(model.generate(**batch), skip_special_tokens=True)  # doctest: +SKIP
        """
        return [self.decode(row, skip_special_tokens=skip_special_tokens) for row in sequences]

    def check_ids(self, ids) -> np.ndarray:
        """`ids` (an int, or a flat sequence, numpy array or tensor of integers) as an int64 array; anything
        else raises: `TypeError` for a non-integer (3.7, True, "3"), `ValueError` for a nested sequence or an
        id outside [0, vocab_size). Nothing is rounded, flattened or wrapped around."""
        if hasattr(ids, "detach"):  # a torch tensor, on any device
            ids = ids.tolist()
        if isinstance(ids, (str, bytes, bytearray)):  # numpy would take a bytearray's bytes for ids
            raise TypeError(f"token ids must be integers, not {type(ids).__name__} {ids!r:.40}")
        try:
            array = np.asarray(ids)
        except ValueError as e:  # a ragged nested list
            raise ValueError(f"token ids must be a flat sequence of integers ({e})") from None
        if array.ndim > 1:
            raise ValueError(f"token ids must be a flat sequence of integers, not of shape {array.shape}; decode "
                             "each row separately")
        array = array.reshape(-1)
        if array.dtype == object:  # Python ints beyond int64, None, mixed types, or an array of dtype object
            values = array.tolist()
            bad = [i for i in values if not isinstance(i, int) or isinstance(i, bool)]
            if bad:
                raise TypeError(f"token ids must be integers, not {type(bad[0]).__name__} {bad[0]!r:.40}")
            bad = [i for i in values if not 0 <= i < self.vocab_size]
            if bad:
                raise ValueError(f"token id {bad[0]} is out of range [0, {self.vocab_size})")
            array = np.asarray(values, dtype=np.int64)
        if array.size and (array.dtype == bool or not np.issubdtype(array.dtype, np.integer)):
            raise TypeError(f"token ids must be integers, not {array.dtype}: {array[:3].tolist()!r:.40}")
        bad = np.flatnonzero((array < 0) | (array >= self.vocab_size))  # in their own dtype: uint64 never wraps
        if bad.size:
            raise ValueError(f"token id {array[bad[0]]} (position {bad[0]}) is out of range [0, {self.vocab_size})")
        return array.astype(np.int64, copy=False)

    def decode(self, ids, *, skip_special_tokens: bool = False) -> str:
        """Text of reduced ids; EOS and UNK are rendered as `<|endoftext|>` / `<|unk|>` unless skipped.
        `ids`: a list, an array or a tensor (any device). Raises `TypeError`/`ValueError` for ids that are not integers in [0, vocab_size) (`check_ids`)."""
        ids = self.check_ids(ids)
        pieces, start = [], 0
        for pos in np.flatnonzero((ids == EOS_ID) | (ids == UNK_ID)).tolist() + [len(ids)]:
            if pos > start:
                pieces.append(self.base_tokenizer.decode(self.base_ids[ids[start:pos]].tolist(),
                                                         skip_special_tokens=False))
            if pos < len(ids) and not skip_special_tokens:
                pieces.append(EOS_TOKEN if ids[pos] == EOS_ID else UNK_TOKEN)
            start = pos + 1
        return "".join(pieces)

    def convert_ids_to_tokens(self, ids):
        """Token strings of reduced ids (a str for a single int, as in transformers); EOS and UNK are
        `<|endoftext|>` and `<|unk|>` whatever the base tokenizer calls them (or lacks them). Raises as
        `check_ids`."""
        single = isinstance(ids, (int, np.integer)) and not isinstance(ids, bool)
        tokens = [EOS_TOKEN if i == EOS_ID else UNK_TOKEN if i == UNK_ID else
                  self.base_tokenizer.id_to_token(int(self.base_ids[i])) for i in self.check_ids(ids).tolist()]
        return tokens[0] if single else tokens

    # -- persistence --------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": FORMAT, "vocab_size": self.vocab_size, "eos_id": EOS_ID, "unk_id": UNK_ID,
                "eos_token": EOS_TOKEN, "unk_token": UNK_TOKEN,
                "base_tokenizer": {"vocab_size": self.base_tokenizer.get_vocab_size(with_added_tokens=True),
                                   "sha256": self.base_sha256},
                "meta": self.meta, "base_ids": self.base_ids.tolist(),
                "counts": None if self.counts is None else self.counts.tolist()}

    @functools.cached_property
    def base_sha256(self) -> str:
        return tokenizer_sha256(self.base_tokenizer)

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 of what decides the ids: the base tokenizer and the reduced id -> base id table."""
        key = {"base": self.base_sha256, "base_ids": self.base_ids.tolist(),
               "eos_id": EOS_ID, "unk_id": UNK_ID}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()

    def save_pretrained(self, directory) -> Path:
        """Write `tinystories_vocab.json` and the base tokenizer (`base/tokenizer.json`) to `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / BASE_DIR).mkdir(exist_ok=True)
        self.base_tokenizer.save(str(directory / BASE_DIR / "tokenizer.json"))
        # Lets transformers users open the base tokenizer too: AutoTokenizer.from_pretrained(".../base").
        config = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": EOS_TOKEN, "bos_token": EOS_TOKEN,
                  "unk_token": EOS_TOKEN, "model_max_length": 2048, "clean_up_tokenization_spaces": False}
        (directory / BASE_DIR / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        (directory / VOCAB_FILE).write_text(json.dumps(self.to_dict()), encoding="utf-8")
        return directory

    @classmethod
    @api_errors
    def from_pretrained(cls, directory, *, backend: str = "auto"):
        """Load a saved tokenizer from its folder, or from a prepared dataset folder (`DIR/tokenizer`)."""
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
        if data["format"] != FORMAT:
            raise TinyStoriesError(f"{path}: unknown format {data['format']!r} (expected {FORMAT})")
        if not (directory / BASE_DIR / "tokenizer.json").is_file():  # else its loader would try the Hub by name
            raise TinyStoriesError(f"{directory / BASE_DIR / 'tokenizer.json'}: missing or not a regular file; {fix}")
        base = load_base_tokenizer(str(directory / BASE_DIR))
        if tokenizer_sha256(base) != data["base_tokenizer"]["sha256"]:
            raise TinyStoriesError(f"{directory / BASE_DIR}: base tokenizer differs from the one the vocabulary "
                                   "was built with; re-create the folder with tinystories-prepare")
        problem = _table_problem(data, base.get_vocab_size(with_added_tokens=True))
        if problem:
            raise TinyStoriesError(f"{path}: {problem}; {fix}")
        ids = data["base_ids"]
        return cls(base, ids, data.get("counts"), backend=backend, meta=data.get("meta"))

    def __repr__(self) -> str:
        return (f"TinyStoriesTokenizer(vocab_size={self.vocab_size}, eos_id={EOS_ID}, unk_id={UNK_ID}, "
                f"base={self.base_tokenizer.get_vocab_size(with_added_tokens=True)} ids, backend={self.backend!r})")
