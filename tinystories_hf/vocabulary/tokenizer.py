"""The vocabulary (stage 2). As in the paper (the default), the base BPE restricted to its most frequent tokens;
or, with `--vocab-size full`, the base tokenizer's own ids (a tokenizer trained on the corpus, GPT-2's 50,257).

Reduced ids: 0 is EOS (`<|endoftext|>`, the story separator), 1 is UNK (every dropped token), and
2 .. vocab_size-1 are base tokens by decreasing frequency on a seeded train sample, ties broken by base
id. So a model's embedding has exactly `vocab_size` rows. Fill rule: when the sample holds fewer distinct
tokens than `vocab_size - 2`, the ids after its last seen token go to tokens it never saw (count 0, so
lowest base id first, by the tie rule); they occur in no story of the sample, and `ids_in_sample` counts
the others. A full vocabulary keeps the base ids, and the base tokenizer's own EOS, BOS and UNK
(`base.base_special_ids`); its story separator is its EOS, or its BOS where it has no EOS.

Saved as JSON (`tinystories_vocab.json`) next to the base tokenizer's own file (`tokenizer.json`, or a
SentencePiece `.model`), with a `tokenizer_config.json` that transformers' `AutoTokenizer` reads: a full
tokenizer.json vocabulary loads as it is; a reduced one, or a SentencePiece one, through the module
`tokenization_tinystories.py` saved beside it (`trust_remote_code=True`). Nothing is pickled.
"""
import functools
import hashlib
import itertools
import json
from pathlib import Path

import numpy as np

from ..errors import TinyStoriesError, flag
from ..supervision import api_errors
from .base import make_encoder, special_ids
from .calling import TransformersCalls
from .encoders import id_space
from .gpt2 import tokenizer_sha256
from .saved import BASE_DIR, FORMAT, FULL, REDUCED, REMOTE_MODULE, VOCAB_FILE, own_module, read_saved

EOS_ID, UNK_ID = 0, 1  # of a reduced vocabulary
EOS_TOKEN, UNK_TOKEN = "<|endoftext|>", "<|unk|>"
UINT16_IDS = 65_536  # a vocabulary of at most this many ids is stored as uint16, a larger one as uint32


def check_vocabulary(base_tokenizer, vocab_size, specials: dict, *, name: str = "the tokenizer") -> None:
    """Raise the one line `from_counts` / `full` would raise, before any story is read: `vocab_size` (an int, or
    "full") larger than the base tokenizer's regular tokens + 2, or "full" for a tokenizer with neither EOS nor
    BOS."""
    if vocab_size == FULL:
        TinyStoriesTokenizer.full(base_tokenizer, specials=specials, name=name)
        return
    TinyStoriesTokenizer.from_counts(base_tokenizer, np.zeros(id_space(base_tokenizer), dtype=np.int64), vocab_size)


def specials_text(ids: dict, *, upper: bool = False) -> str:
    """"eos 0, unk 1" (or "EOS 0, UNK 1"): the specials of `ids` (a tokenizer's or prepare_info's `eos_id`,
    `bos_id`, `unk_id`) that it has, for the lines and cards that name them."""
    names = [(name.upper() if upper else name, ids.get(f"{name}_id")) for name in ("eos", "bos", "unk")]
    return ", ".join(f"{name} {i}" for name, i in names if i is not None)


def _text(text) -> str:
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, not {type(text).__name__}: {text!r:.40}")
    return text


class TinyStoriesTokenizer(TransformersCalls):
    """The vocabulary of a prepared folder: `encode(text)` gives its ids, `decode(ids)` text.

    Reduced (the paper's, the default): the GPT-Neo BPE restricted to `vocab_size` ids, EOS 0, UNK 1. Full
    (`--vocab-size full`): the base tokenizer's own ids and specials (`eos_id`, `bos_id`, `unk_id`, None where
    it has none). `separator_id` is the id the packed datasets and `PackingCollator` put between stories: EOS,
    or BOS for a vocabulary without an EOS. `id_dtype` is the stored dtype: uint16 up to 65,536 ids, uint32 above.

    Build one with `prepare()` (or `from_counts` / `full`), load a saved one with `from_pretrained(dir)`.
    Called like a transformers tokenizer (`tok(texts, padding=True, return_tensors="pt")`, `batch_decode`) it
    feeds `model.generate`; `transformers.AutoTokenizer.from_pretrained(DIR + "/tokenizer",
    trust_remote_code=True)` loads the same ids without this package (plain `AutoTokenizer` for a full
    tokenizer.json vocabulary).

    Example:
        >>> tok = TinyStoriesTokenizer.from_pretrained("tinystories_prepared/tokenizer")  # doctest: +SKIP
        >>> ids = tok.encode("Once upon a time")  # doctest: +SKIP
        >>> tok.decode(ids), tok.vocab_size, tok.eos_id, tok.unk_id  # doctest: +SKIP
        ('Once upon a time', 10000, 0, 1)
        >>> batch = tok(["Once upon a time", "The dog"], padding=True, return_tensors="pt")  # doctest: +SKIP
        >>> batch["input_ids"].shape, batch["attention_mask"].tolist()  # doctest: +SKIP
        (torch.Size([2, 4]), [[1, 1, 1, 1], [1, 1, 0, 0]])
    """

    model_input_names = ("input_ids", "attention_mask")
    padding_side = "right"  # set "left" for batched generation with a decoder-only model

    def __init__(self, base_tokenizer, base_ids, counts=None, *, backend: str = "auto", encoder=None, meta=None,
                 specials: dict | None = None):
        self.base_tokenizer = base_tokenizer
        self.counts = None if counts is None else np.asarray(counts, dtype=np.int64)
        self.backend = backend
        self.meta = dict(meta or {})
        self._encoder = encoder
        base_size = id_space(base_tokenizer)  # largest id + 1: a tokenizer.json may leave ids unused
        if base_ids is None:  # full: the base tokenizer's own ids
            self.kind, self.base_ids, self.base_to_reduced = FULL, None, None
            specials = specials or {}
            self.eos_id, self.bos_id, self.unk_id = (specials.get(k) for k in ("eos", "bos", "unk"))
            self.separator_id = self.eos_id if self.eos_id is not None else self.bos_id
            self._size = base_size
            name = lambda i: None if i is None else base_tokenizer.id_to_token(i)
            self.eos_token, self.bos_token, self.unk_token = name(self.eos_id), name(self.bos_id), name(self.unk_id)
        else:
            self.kind = REDUCED
            self.base_ids = np.asarray(base_ids, dtype=np.int64)  # reduced id -> base id (-1 for UNK)
            self.eos_id, self.unk_id, self.bos_id, self.separator_id = EOS_ID, UNK_ID, None, EOS_ID
            self.eos_token, self.unk_token, self.bos_token = EOS_TOKEN, UNK_TOKEN, None
            self._size = len(self.base_ids)
            # base id -> reduced id, UNK by default: one gather (take) remaps a whole batch.
            self.base_to_reduced = np.full(base_size, UNK_ID, dtype=self.id_dtype)  # uint32 past 65,536 ids
            # Only ids 2.. are regular tokens: a base EOS id met in text maps to UNK, never to the separator.
            self.base_to_reduced[self.base_ids[2:]] = np.arange(2, len(self.base_ids), dtype=self.id_dtype)
        # transformers' names, so code written for a transformers tokenizer reads them. Padding uses the
        # separator (GPT-2's convention: EOS; the attention mask hides it); a reduced vocabulary has no BOS of
        # its own and, as GPT-2, names EOS as its BOS.
        self.pad_token_id = self.separator_id
        self.pad_token = self.id_token(self.separator_id)
        self.bos_token_id = self.bos_id if self.bos_id is not None else self.eos_id
        self.eos_token_id, self.unk_token_id = self.eos_id, self.unk_id
        if self.kind == REDUCED:
            self.bos_token = EOS_TOKEN

    @property
    def vocab_size(self) -> int:
        return self._size

    @property
    def id_dtype(self) -> str:
        """The dtype of the stored ids: `uint16` while the vocabulary fits it, `uint32` above 65,536 ids."""
        return "uint16" if self.vocab_size <= UINT16_IDS else "uint32"

    @functools.cached_property
    def special_token_ids(self) -> list:
        """EOS, BOS, UNK and the base tokenizer's other special ids (a full vocabulary), sorted: no story holds
        them as text, `decode` renders them by name."""
        ids = {self.eos_id, self.unk_id, self.bos_id} - {None}
        if self.kind == FULL:
            ids |= special_ids(self.base_tokenizer)
        return sorted(ids)

    @property
    def ids_in_sample(self):
        """Regular ids (2..) whose token occurs in the vocabulary sample, or None when no counts were saved.

        The other `vocab_size - 2 - ids_in_sample` ids are fill (see the module docstring): a vocabulary of
        `ids_in_sample + 2` ids gives the same ids for every story of the sample. For a full vocabulary, the
        ids of the base tokenizer the sample holds (there is no fill)."""
        if self.counts is None:
            return None
        return int(np.count_nonzero(self.counts[2:] if self.kind == REDUCED else self.counts))

    def __len__(self) -> int:
        return self.vocab_size

    @property
    def encoder(self):
        """The base-id encoder (fastokens, tiktoken, tokenizers or sentencepiece), built on first use."""
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
        if len(counts) != base_tokenizer.get_vocab_size(with_added_tokens=True):  # ids the tokenizer leaves unused
            used = np.zeros(len(counts), dtype=bool)
            used[list(base_tokenizer.get_vocab(with_added_tokens=True).values())] = True
            order = order[used[order]]
        if len(order) < vocab_size - 2:
            raise TinyStoriesError(f"{flag('vocab_size', vocab_size)} exceeds the base tokenizer's {len(order)} "
                                   f"regular tokens + 2 specials; lower it, or keep its own ids with "
                                   f"{flag('vocab_size', 'full')}")
        kept = order[: vocab_size - 2]
        base_ids = np.concatenate([[-1 if eos_base is None else eos_base, -1], kept])
        kept_counts = np.concatenate([[0, counts.sum() - counts[kept].sum()], counts[kept]])
        return cls(base_tokenizer, base_ids, kept_counts, backend=backend, encoder=encoder, meta=meta)

    @classmethod
    def full(cls, base_tokenizer, counts=None, *, specials: dict, backend: str = "auto", encoder=None, meta=None,
             name: str = "the tokenizer"):
        """The base tokenizer's own ids and `specials` (`{"eos", "bos", "unk"}` ids, from
        `base_special_ids`). Raises `TinyStoriesError` when it has neither EOS nor BOS: no id could separate
        the stories of the packed stream."""
        if specials.get("eos") is None and specials.get("bos") is None:
            raise TinyStoriesError(f"{flag('vocab_size', 'full')} keeps {name}'s own ids, but it has neither an EOS "
                                   "nor a BOS token to separate stories; name one in its tokenizer_config.json "
                                   "(eos_token), or use a reduced vocabulary (an integer --vocab-size)")
        return cls(base_tokenizer, None, counts, backend=backend, encoder=encoder, meta=meta, specials=specials)

    # -- encoding ---------------------------------------------------------------------------------------
    def remap(self, base_ids) -> np.ndarray:
        """Base ids (any integer array) -> this vocabulary's ids (`id_dtype`)."""
        if self.base_to_reduced is None:
            return np.asarray(base_ids, dtype=np.int64).astype(self.id_dtype)
        return self.base_to_reduced[np.asarray(base_ids, dtype=np.int64)]

    def encode(self, text: str) -> list:
        """Ids of `text` (no EOS or BOS added; `<|endoftext|>` in the text is encoded as plain text). Raises
        `TypeError` for anything but a `str`."""
        return self.encode_batch([_text(text)])[0]

    def encode_batch(self, texts: list) -> list:
        """Ids of each text of a list or tuple of `str`; a single `str` is refused (`TypeError`), not
        encoded character by character."""
        if isinstance(texts, (str, bytes)) or not isinstance(texts, (list, tuple)):
            raise TypeError(f"texts must be a list of strings, not {type(texts).__name__}: {texts!r:.40}; encode "
                            "one text with encode()")
        return [self.remap(ids).tolist() for ids in self.encoder.encode_batch([_text(t) for t in texts])]

    def decode(self, ids, *, skip_special_tokens: bool = False) -> str:
        """Text of the ids: each run between special ids decoded by the base tokenizer (SentencePiece: cut from
        sentencepiece's decode of all the regular ids, which `skip_special_tokens=True` gives exactly); the
        specials (EOS, UNK, BOS and, for a full vocabulary, the base tokenizer's other special ids) rendered by
        their token (`<|endoftext|>`, `<|unk|>`, `</s>`...) unless skipped. `ids`: a list, an array or a tensor (any
        device). Raises `TypeError`/`ValueError` for ids that are not integers in [0, vocab_size) (`check_ids`)."""
        ids = self.check_ids(ids)
        base = ids if self.base_ids is None else self.base_ids[ids]
        marks = np.flatnonzero(np.isin(ids, self.special_token_ids)).tolist()
        runs = [base[a + 1:b].tolist() for a, b in itertools.pairwise([-1, *marks, len(ids)])]
        if hasattr(self.base_tokenizer, "decode_runs"):  # sentencepiece: the runs' text as one decode gives it
            texts = self.base_tokenizer.decode_runs(runs)
        else:
            texts = [self.base_tokenizer.decode(run, skip_special_tokens=False) if run else "" for run in runs]
        pieces = [texts[0]]
        for mark, text in zip(marks, texts[1:]):
            pieces += [text] if skip_special_tokens else [self.id_token(int(ids[mark])), text]
        return "".join(pieces)

    def id_token(self, i):
        """The token of one id (None for None): `<|endoftext|>` and `<|unk|>` for a reduced vocabulary's EOS and
        UNK whatever the base tokenizer calls them (or lacks them), else the base tokenizer's token."""
        if i is None:
            return None
        if self.kind == REDUCED:
            if i == EOS_ID:
                return EOS_TOKEN
            if i == UNK_ID:
                return UNK_TOKEN
            return self.base_tokenizer.id_to_token(int(self.base_ids[i]))
        return self.base_tokenizer.id_to_token(int(i))

    # -- persistence --------------------------------------------------------------------------------------
    @property
    def base_file(self) -> str:
        """Where `save_pretrained` puts the base tokenizer, relative to the tokenizer folder (`BASE_FILES`)."""
        if getattr(self.base_tokenizer, "kind", None) == "sentencepiece":
            return f"{BASE_DIR}/tokenizer.model"
        return "tokenizer.json" if self.kind == FULL else f"{BASE_DIR}/tokenizer.json"

    @property
    def needs_remote_code(self) -> bool:
        """True when `tokenizer.json` cannot express the ids (a reduced vocabulary, a SentencePiece base):
        `AutoTokenizer` then loads the folder through `tokenization_tinystories.py` (`trust_remote_code=True`)."""
        return self.kind == REDUCED or self.base_file.endswith(".model")

    def to_dict(self) -> dict:
        return {"format": FORMAT, "vocabulary": self.kind, "vocab_size": self.vocab_size, "eos_id": self.eos_id,
                "unk_id": self.unk_id, "bos_id": self.bos_id, "separator_id": self.separator_id,
                "eos_token": self.eos_token, "unk_token": self.unk_token, "bos_token": self.bos_token,
                "base_file": self.base_file,
                "base_tokenizer": {"vocab_size": id_space(self.base_tokenizer),
                                   "sha256": self.base_sha256},
                "meta": self.meta, "base_ids": None if self.base_ids is None else self.base_ids.tolist(),
                "counts": None if self.counts is None else self.counts.tolist()}

    @functools.cached_property
    def base_sha256(self) -> str:
        return tokenizer_sha256(self.base_tokenizer)

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 of what decides the ids: the base tokenizer and the reduced id -> base id table (a reduced
        vocabulary: the same hash as before full vocabularies existed), or the specials of a full one."""
        if self.kind == REDUCED:
            key = {"base": self.base_sha256, "base_ids": self.base_ids.tolist(), "eos_id": EOS_ID, "unk_id": UNK_ID}
        else:
            key = {"base": self.base_sha256, "vocabulary": FULL, "eos_id": self.eos_id, "bos_id": self.bos_id,
                   "unk_id": self.unk_id}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()

    def transformers_config(self, *, model_max_length: int | None = None) -> dict:
        """The `tokenizer_config.json` transformers reads: the special tokens, stories' specials as text
        (`split_special_tokens`), no BOS/EOS added, and for a vocabulary tokenizer.json cannot express the
        `auto_map` naming the module saved beside it."""
        config = {"eos_token": self.eos_token, "bos_token": self.id_token(self.bos_token_id),
                  "unk_token": self.unk_token, "pad_token": self.pad_token, "split_special_tokens": True,
                  "clean_up_tokenization_spaces": False, "add_bos_token": False, "add_eos_token": False,
                  "padding_side": self.padding_side, "model_input_names": list(self.model_input_names)}
        config = {key: value for key, value in config.items() if value is not None}
        if model_max_length is not None:
            config["model_max_length"] = model_max_length
        if self.needs_remote_code:
            config["tokenizer_class"] = "TinyStoriesHFTokenizer"
            config["auto_map"] = {"AutoTokenizer": [f"{REMOTE_MODULE}.TinyStoriesHFTokenizer", None]}
        else:
            config["tokenizer_class"] = "PreTrainedTokenizerFast"
        return config

    def save_pretrained(self, directory, *, model_max_length: int | None = None) -> Path:
        """Write the tokenizer folder: `tinystories_vocab.json`, the base tokenizer (`base_file`), the
        `tokenizer_config.json` transformers reads and, where `needs_remote_code`, `tokenization_tinystories.py`."""
        directory = Path(directory)
        (directory / self.base_file).parent.mkdir(parents=True, exist_ok=True)
        self.base_tokenizer.save(str(directory / self.base_file))
        if self.base_file == f"{BASE_DIR}/tokenizer.json":
            # Lets transformers users open the base tokenizer too: AutoTokenizer.from_pretrained(".../base").
            config = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": EOS_TOKEN, "bos_token": EOS_TOKEN,
                      "unk_token": EOS_TOKEN, "model_max_length": 2048, "clean_up_tokenization_spaces": False}
            (directory / BASE_DIR / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        (directory / VOCAB_FILE).write_text(json.dumps(self.to_dict()), encoding="utf-8")
        config = self.transformers_config(model_max_length=model_max_length)
        (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        if self.needs_remote_code:
            (directory / f"{REMOTE_MODULE}.py").write_bytes(own_module())
        return directory

    @classmethod
    @api_errors
    def from_pretrained(cls, directory, *, backend: str = "auto"):
        """Load a saved tokenizer from its folder, or from a prepared dataset folder (`DIR/tokenizer`)."""
        data, base = read_saved(directory)
        if data["base_ids"] is None:
            specials = {kind: data.get(f"{kind}_id") for kind in ("eos", "bos", "unk")}
            return cls.full(base, data.get("counts"), specials=specials, backend=backend, meta=data.get("meta"))
        return cls(base, data["base_ids"], data.get("counts"), backend=backend, meta=data.get("meta"))

    def __repr__(self) -> str:
        return (f"TinyStoriesTokenizer(vocab_size={self.vocab_size}, {self.kind}, eos_id={self.eos_id}, "
                f"unk_id={self.unk_id}, base={self.base_tokenizer.get_vocab_size(with_added_tokens=True)} ids, "
                f"backend={self.backend!r})")
