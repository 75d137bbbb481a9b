"""The encoders that turn story text into base ids: fastokens (the fastest exact one, `auto`'s pick for GPT-2),
tiktoken (its reference) and Hugging Face tokenizers (any BPE). Each has `encode_batch(texts)` (lists of ids),
`encode_flat(texts, dtype)` (lengths and one flat id array), a `fingerprint` for datasets' cache and a `note`.

Story text is always encoded as *ordinary* text: a literal `<|endoftext|>` inside a story becomes the tokens of
that string, never the EOS id, which only the training adapters insert between stories.

Every encoder is an `Encoder`: `datasets.map(num_proc>1)` pickles it into its worker processes, and a library
object does not carry what was set on it after it was built (tokenizers' `encode_special_tokens` is lost by
`pickle`), so an encoder pickles only its plain attributes (its recipe) and builds its library objects again,
settings included, in `_build()` on unpickling. A new encoder names those objects in `_rebuilt`.
"""
import functools
import hashlib
import importlib.util
import itertools
import json
import re

import numpy as np

from .gpt2 import _ORDINARY_SPEC, GPT2_SHA256, gpt2_ranks, gpt_neo_tokenizer


def without_lone_surrogates(texts: list) -> list:
    """`texts` with each lone surrogate (a Python str can hold one; valid UTF-8 never does) replaced by U+FFFD,
    after joining surrogate pairs: what tiktoken does, so both backends give the same ids for such a string.
    Called only after an encoder refused a batch: valid text never pays for it."""
    return [t.encode("utf-16", "surrogatepass").decode("utf-16", "replace") if isinstance(t, str) else t
            for t in texts]


@functools.lru_cache(maxsize=16)  # get_vocab takes 0.1 s for GPT-2's 50,257 tokens; tokenizers are not changed
def id_space(tokenizer) -> int:
    """How many ids a base tokenizer's ids fall in: its largest id + 1. Usually its token count, but a
    tokenizer.json may leave ids unused (600 tokens with ids up to 70,599): every array indexed by a base id and
    every dtype holding one is sized by this, never by the count (`get_vocab_size`).

    Example:
        >>> id_space(gpt_neo_tokenizer())
        50257
    """
    if getattr(tokenizer, "kind", None) == "sentencepiece":  # pieces are numbered 0..size-1
        return tokenizer.get_vocab_size()
    return max(tokenizer.get_vocab(with_added_tokens=True).values(), default=-1) + 1


class Encoder:
    """What every encoder shares: it crosses into worker processes by pickle as its recipe.

    `__getstate__` keeps the instance's attributes but those named in `_rebuilt` (library objects, whose
    pickling drops settings made after they were built); `__setstate__` restores the others (`note`
    included) and calls `_build()`, which makes the library objects again from them, settings included.

    Example (`copy.deepcopy` goes through the same two methods as the pickling into a worker):
        >>> import copy
        >>> enc = HFEncoder(gpt_neo_tokenizer())
        >>> copy.deepcopy(enc).encode_batch(["a <|endoftext|>"]) == enc.encode_batch(["a <|endoftext|>"])
        True
    """

    name = ""
    note = ""  # why auto picked this encoder rather than the fastest, if it did
    _rebuilt: tuple = ()  # attributes `_build()` makes from the others: never pickled

    def _build(self) -> None:
        """Make the attributes named in `_rebuilt` from the plain ones (in `__init__` and on unpickling)."""

    def __getstate__(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if key not in self._rebuilt}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._build()


# A story longer than this many characters is encoded piece by piece where the tokenizer allows it
# (`can_cut`): tokenizers takes about 140 bytes per character of one text (7 GB for a 50 MB story, issue 29);
# a piece bounds that to about 150 MB whatever the story's length.
PIECE_CHARS = 1 << 20
# GPT-2's pre-tokenizer: ByteLevel with its regex, no space added in front of a text (what a piece would get).
_GPT2_PRE_TOKENIZER = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}


def can_cut(spec: dict) -> bool:
    """Whether a tokenizer (its tokenizer.json as a dict) gives the same ids for a text cut anywhere just before
    a space that follows a letter, digit or ASCII punctuation and precedes a letter (`cut_points`) as for the
    whole text: its pre-tokenizer is GPT-2's, whose regex ends a pre-token there and begins ` ?\\p{L}+` (see
    `encode_around_whitespace_runs`), so its BPE sees the same pre-tokens; no normalizer could join characters
    across the cut; no added token other than the specials (which `encode_special_tokens` reads as text) could
    span it."""
    pre = spec.get("pre_tokenizer") or {}
    return (spec.get("normalizer") is None and all(pre.get(k) == v for k, v in _GPT2_PRE_TOKENIZER.items())
            and all(token.get("special") for token in spec.get("added_tokens") or []))


_BEFORE_CUT = frozenset(".,!?;:'\")")


def cut_points(text: str, every: int) -> list:
    """Positions, about `every` characters apart, where `text` may be cut for a tokenizer `can_cut` accepts:
    a space after a letter, digit or ASCII punctuation and before a letter. A stretch with no such space is
    not cut (its memory is then that of one text).

    Example:
        >>> cut_points("Once upon a time.  The end", 6)
        [9, 22]
    """
    cuts, start = [], every
    while start < len(text):
        at = text.find(" ", start)
        while at > 0 and not (at + 1 < len(text) and text[at + 1].isalpha()
                              and (text[at - 1].isalnum() or text[at - 1] in _BEFORE_CUT)):
            at = text.find(" ", at + 1)
        if at <= 0:
            break
        cuts.append(at)
        start = at + every
    return cuts


class HFEncoder(Encoder):
    """Base ids from the Hugging Face `tokenizers` backend; special-token strings are kept as text.

    `fingerprint` identifies the ids it produces (the tokenizer's content hash), for datasets' cache. Its
    recipe is the tokenizer's JSON (`spec`); `backend` is rebuilt from it with `encode_special_tokens` set.
    A story over `PIECE_CHARS` characters is encoded in pieces, with the same ids, where `can_cut` allows
    (GPT-2-style BPEs, the trained ones); with any other tokenizer its memory grows with the longest story.
    """

    name = "hf"
    _rebuilt = ("backend",)

    def __init__(self, tokenizer):
        self.spec = tokenizer.to_str()
        self.fingerprint = hashlib.sha256(self.spec.encode()).hexdigest()
        self.vocab_size = id_space(tokenizer)  # the id space: what sizes the dtype of its ids
        self.piece_chars = PIECE_CHARS if can_cut(json.loads(self.spec)) else None
        self._build()

    def _build(self) -> None:
        from tokenizers import Tokenizer

        self.backend = Tokenizer.from_str(self.spec)
        # A setting, not part of the JSON: pickling the Tokenizer alone would drop it (issue 29).
        self.backend.encode_special_tokens = True

    def encode_batch(self, texts: list) -> list:
        long = self.piece_chars is not None and any(isinstance(t, str) and len(t) > self.piece_chars for t in texts)
        if long:
            return [self._encode_in_pieces(t) if isinstance(t, str) and len(t) > self.piece_chars else ids
                    for t, ids in zip(texts, self._encode([t if len(t) <= self.piece_chars else "" for t in texts]))]
        return self._encode(texts)

    def _encode(self, texts: list) -> list:
        try:
            encodings = self.backend.encode_batch_fast(texts, add_special_tokens=False)
        except TypeError:  # tokenizers refuses a lone surrogate with a TypeError
            encodings = self.backend.encode_batch_fast(without_lone_surrogates(texts), add_special_tokens=False)
        return [e.ids for e in encodings]

    def _encode_in_pieces(self, text: str) -> list:
        """The ids of one long text, its pieces encoded one after the other: one piece's memory at a time."""
        bounds = [0, *cut_points(text, self.piece_chars), len(text)]
        return [i for start, end in itertools.pairwise(bounds) for i in self._encode([text[start:end]])[0]]

    def encode_flat(self, texts: list, dtype) -> tuple:
        """(lengths, values): the ids of all `texts` as one flat `dtype` array, and each text's count."""
        ids = self.encode_batch(texts)
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        return lengths, np.fromiter(itertools.chain.from_iterable(ids), dtype=dtype, count=int(lengths.sum()))


def _without_lone_surrogates(texts: list) -> list:
    """Lone surrogates (possible in a Python str, never in UTF-8 data) replaced by U+FFFD, as tiktoken does."""
    return [t.encode("utf-16", "surrogatepass").decode("utf-16", "replace") for t in texts]


@functools.cache
def _gpt2_encoding():
    """tiktoken's Encoding for the bundled GPT-2 files, built once per process; built before a fork, the
    workers inherit it. Nothing of it is pickled: an encoder sent to a worker is only its class."""
    import tiktoken
    from tiktoken_ext.openai_public import r50k_pat_str  # GPT-2's pre-tokenizer regex

    return tiktoken.Encoding("gpt2-offline", pat_str=r50k_pat_str, mergeable_ranks=gpt2_ranks(),
                             special_tokens={"<|endoftext|>": 50256}, explicit_n_vocab=50257)


class TiktokenEncoder(Encoder):
    """Base ids from tiktoken, built offline from the bundled GPT-2 files; identical ids, several times faster
    than `HFEncoder`. The reference the fastokens backend is checked against on every run."""

    name = "tiktoken"
    fingerprint = "gpt2-bpe:" + GPT2_SHA256["vocab.bpe"] + GPT2_SHA256["encoder.json"]
    vocab_size = 50257

    @property
    def encoding(self):
        return _gpt2_encoding()

    def encode_batch(self, texts: list) -> list:
        return [ids.tolist() for ids in self._encode_all(texts)]

    def encode_flat(self, texts: list, dtype) -> tuple:
        """(lengths, values) as `HFEncoder.encode_flat`; numpy buffers straight from tiktoken, which skips
        building a Python int per token."""
        arrays = self._encode_all(texts)
        lengths = np.fromiter(map(len, arrays), dtype=np.int64, count=len(arrays))
        return lengths, np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(0, dtype)

    def _encode_all(self, texts: list) -> list:
        # No thread pool (encode_ordinary_batch's): datasets.map already runs one encoder per process.
        try:
            return [self._encode(text) for text in texts]
        except UnicodeEncodeError:  # a lone surrogate: encode_ordinary replaces it, encode_to_numpy refuses it
            return [self._encode(text) for text in without_lone_surrogates(texts)]

    def _encode(self, text: str) -> np.ndarray:
        """encode_ordinary's ids of one text, as a uint32 array."""
        encode = functools.partial(self.encoding.encode_to_numpy, allowed_special=set(), disallowed_special=())
        try:
            return encode(text)
        except BaseException as e:  # pyo3's PanicException, which tiktoken raises too, is no Exception
            if isinstance(e, (KeyboardInterrupt, SystemExit, MemoryError, UnicodeEncodeError)) or \
                    not _WHITESPACE_RUN.search(text):
                raise
        # tiktoken's regex engine gives up on a whitespace run of about 10**6 characters followed by text
        # (its backtracking limit; openai/tiktoken#245, #258): the same ids, from pieces it can encode.
        return encode_around_whitespace_runs(text, encode, self.encoding._encode_single_piece)


# A run of GPT-2's whitespace (the \s of its pre-tokenizer's regex: Unicode White_Space, as tiktoken's and
# tokenizers' regex engines read it; not Python's str.isspace, which adds U+001C..U+001F) long enough to be
# worth cutting the text around.
_WHITESPACE_RUN = re.compile("[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]{4096,}")


def encode_around_whitespace_runs(text: str, encode, encode_piece) -> np.ndarray:
    """GPT-2 ids of `text`, encoding its long whitespace runs (4,096 characters or more) apart from the rest.

    `encode(text)` gives the ids of a text (uint32 array); `encode_piece(bytes)` the BPE of one pre-token.
    Exact, from how GPT-2's pre-tokenizer regex
    (`'(?:[sdmt]|ll|ve|re)| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+$|\\s+(?!\\S)|\\s`) splits
    `A + W + B`, W a maximal whitespace run of 2 or more characters: no pre-token of A reaches into W (none
    but the whitespace ones takes a trailing space, and A ends in non-whitespace); W less its last character
    is one pre-token (`\\s+(?!\\S)` backtracks one character); its last character starts what follows,
    alone or as the space of ` ?\\p{L}+`, just as at the start of a text. A run that ends the text is one
    pre-token (`\\s+$`). So ids(A + W + B) = ids(A) + bpe(W[:-1]) + ids(W[-1] + B).

    Example:
        >>> enc = TiktokenEncoder()
        >>> text = "Once." + " " * 5000 + "The end."
        >>> encode_around_whitespace_runs(text, enc._encode, lambda b: [220] * len(b)).tolist()[-3:]
        [383, 886, 13]
    """
    pieces, start = [], 0
    for run in _WHITESPACE_RUN.finditer(text):
        end = run.end() if run.end() == len(text) else run.end() - 1
        pieces += [encode(text[start:run.start()]), encode_piece(text[run.start():end].encode())]
        start = end
    pieces.append(encode(text[start:]))
    return np.concatenate([np.asarray(p, dtype=np.uint32) for p in pieces])


FAST_PACKAGE = "fastokens"


def fastokens_available() -> bool:
    return importlib.util.find_spec("fastokens") is not None


@functools.cache
def _gpt2_fastokens():
    """fastokens' BPE for the bundled GPT-2 files, built once per process (forked workers inherit it) from
    the tokenizer.json `gpt_neo_tokenizer` builds, before its `<|endoftext|>` added token: story text is
    ordinary text, so nothing in it may match a special token (calls also pass split_special_tokens)."""
    import fastokens

    if "json" not in _ORDINARY_SPEC:
        gpt_neo_tokenizer()
    return fastokens.Tokenizer.from_json_str(_ORDINARY_SPEC["json"])


class _FastokensCalls(Encoder):
    """The calls of an encoder whose `backend` is a fastokens Tokenizer (story text always ordinary text)."""

    name = "fastokens"
    note = ""
    fallback = False  # True: a difference found by prepare's check makes it encode with the reference instead

    def encode_batch(self, texts: list) -> list:
        lengths, values = self.encode_flat(texts, np.uint32)
        return [ids.tolist() for ids in np.split(values, np.cumsum(lengths)[:-1])] if len(texts) else []

    def encode_flat(self, texts: list, dtype) -> tuple:
        """(lengths, values) as `HFEncoder.encode_flat`, from fastokens' one flat buffer of the batch (ids as
        little-endian uint32, offsets as uint64)."""
        texts = list(texts)
        try:
            ids, offsets = self.backend.encode_batch_flat(texts, split_special_tokens=True)
        except UnicodeEncodeError:  # a lone surrogate in a Python str: replaced as tiktoken does, same ids
            ids, offsets = self.backend.encode_batch_flat(_without_lone_surrogates(texts), split_special_tokens=True)
        lengths = np.diff(np.frombuffer(offsets, dtype="<u8")).astype(np.int64)
        return lengths, np.frombuffer(ids, dtype="<u4").astype(dtype)


def fastokens_version() -> str:
    from importlib.metadata import version

    return version(FAST_PACKAGE)


class FastokensEncoder(_FastokensCalls):
    """Base ids from fastokens, built offline from the bundled GPT-2 files: tiktoken's ids, several times
    faster (the evaluation of the candidates is in docs/encoders.md). Each run checks a seeded sample of its
    ids against tiktoken (`tokenize.check_sample`). It encodes a batch on the calling thread, so forked
    datasets workers each run one.
    """

    vocab_size = 50257

    @functools.cached_property
    def fingerprint(self) -> str:
        # Its own cache entry, with the library's version: ids cached by a release that the check caught,
        # or by an older one, are never reused by another backend or release.
        return f"fastokens-{fastokens_version()}:" + TiktokenEncoder.fingerprint

    @property
    def backend(self):
        return _gpt2_fastokens()

    @staticmethod
    def reference():
        """The encoder whose ids a sample of this one's is checked against on every run."""
        return TiktokenEncoder()


_BUILT = {}  # sha256 of a tokenizer.json -> its fastokens Tokenizer, built once per process (forks inherit it)


def fastokens_tokenizer(spec: str):
    """fastokens' Tokenizer for the tokenizer.json text `spec`, built once per process. Raises what fastokens
    raises for a file it cannot load (ValueError, or a pyo3 error)."""
    key = hashlib.sha256(spec.encode()).hexdigest()
    if key not in _BUILT:
        import fastokens

        _BUILT[key] = fastokens.Tokenizer.from_json_str(spec)
    return _BUILT[key]


def fastokens_problem(spec: str) -> str | None:
    """Why fastokens cannot load the tokenizer.json text `spec` (its message's first line), or None."""
    try:
        fastokens_tokenizer(spec)
    except BaseException as e:  # pyo3's PanicException is no Exception
        if isinstance(e, (KeyboardInterrupt, SystemExit, MemoryError)):
            raise
        return (str(e).splitlines() or [type(e).__name__])[0][:200]
    return None


class FastTokenizerJsonEncoder(_FastokensCalls):
    """Base ids of any `tokenizer.json` (a byte-level BPE trained by tinystories-train-tokenizer, a Hub
    tokenizer) from fastokens, checked on every run against `tokenizers` itself (`reference`, the ids of
    `HFEncoder`) on a seeded sample. `spec` is the tokenizer.json text; `identity` names what decides the ids
    (the reference's fingerprint) for the cache key. Pickled as that small recipe, rebuilt on unpickling.

    Example:
        >>> enc = FastTokenizerJsonEncoder(tokenizer.to_str(), vocab_size=4096)  # doctest: +SKIP
        >>> enc.encode_batch(["Once upon a time"]) == enc.reference().encode_batch(["Once upon a time"])  # doctest: +SKIP
        True
    """

    def __init__(self, spec: str, *, vocab_size: int, identity: str | None = None):
        self.spec, self.vocab_size = spec, int(vocab_size)
        self.identity = identity or hashlib.sha256(spec.encode()).hexdigest()
        self.fingerprint = f"fastokens-{fastokens_version()}:{self.identity}"

    @property
    def backend(self):
        return fastokens_tokenizer(self.spec)

    def reference(self):
        from tokenizers import Tokenizer

        return HFEncoder(Tokenizer.from_str(self.spec))

    def __getstate__(self):
        return {"spec": self.spec, "vocab_size": self.vocab_size, "identity": self.identity, "note": self.note,
                "fallback": self.fallback}

    def __setstate__(self, state):
        self.__init__(state["spec"], vocab_size=state["vocab_size"], identity=state["identity"])
        self.note, self.fallback = state["note"], state["fallback"]
