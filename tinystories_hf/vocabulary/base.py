"""The base tokenizer: the bundled GPT-Neo BPE (GPT-2's 50,257 ids; the default), any `tokenizer.json`, a
SentencePiece `.model`, or a Hugging Face tokenizer name; its special ids; and the encoder that gives its ids
(`make_encoder`: `encoders.py` for tokenizer.json files, `sentencepiece_fast.py` or sentencepiece itself for a
`.model`).
"""
from pathlib import Path

from ..config import DEFAULT_TOKENIZER
from ..errors import TinyStoriesError, flag
from ..utils.hub_access import require_hub
from ..utils.json_files import read_json
from .encoders import (
    FAST_PACKAGE,
    FastokensEncoder,
    FastTokenizerJsonEncoder,
    HFEncoder,
    TiktokenEncoder,
    fastokens_available,
    fastokens_problem,
    id_space,
)
from .gpt2 import gpt_neo_tokenizer, is_gpt2_bpe
from .saved import VOCAB_FILE, VOCAB_SCHEMA, load_tokenizer_file, own_folder, read_saved
from .sentencepiece_base import MODEL_SUFFIX, SentencePieceEncoder, SentencePieceTokenizer
from .sentencepiece_fast import SentencePieceFastEncoder


def load_base_tokenizer(name_or_path: str = DEFAULT_TOKENIZER, *, option: str = "tokenizer"):
    """Return the base tokenizer: a `tokenizers.Tokenizer`, or a `SentencePieceTokenizer` for a SentencePiece
    model; the default is the bundled GPT-Neo BPE.

    `name_or_path` may also be a folder with a `tokenizer.json` or a file of that format, a SentencePiece
    `.model` file (llama2.c's `tok4096.model`, Llama 2's `tokenizer.model`) or a folder holding one (what
    `tinystories-train-tokenizer --model sentencepiece` writes), a tinystories-hf tokenizer folder or prepared
    folder (its base tokenizer, read from its data by `saved.read_saved`), or any Hugging Face tokenizer name
    or folder (loaded with `transformers.AutoTokenizer`, which needs its fast backend; a Hub name is first
    probed, so an unreachable Hub is one line at once). Code a folder ships is never run
    (`trust_remote_code=False`): a tokenizer that needs it is one line. `option` is the caller's option
    naming it, for the messages (stream's is `base_tokenizer`).

    Example:
        >>> load_base_tokenizer().encode("Once upon a time").ids
        [7454, 2402, 257, 640]
    """
    path = Path(name_or_path).expanduser()
    if name_or_path == DEFAULT_TOKENIZER:
        return gpt_neo_tokenizer()
    own = own_folder(path)
    if own is not None:  # this project's folder: its data, never its tokenization_tinystories.py
        return read_saved(own)[1]
    models = sorted(path.glob("*" + MODEL_SUFFIX)) if path.is_dir() and not (path / "tokenizer.json").is_file() else []
    if len(models) > 1:
        raise TinyStoriesError(f"{path} holds {len(models)} SentencePiece models ({', '.join(m.name for m in models)}); "
                               f"pass one of them as {flag(option, str(models[0]))}")
    if path.suffix == MODEL_SUFFIX and path.is_file() or models:
        tokenizer = SentencePieceTokenizer.from_file(models[0] if models else path)
    elif path.is_file() or (path / "tokenizer.json").is_file():
        tokenizer = load_tokenizer_file(path if path.is_file() else path / "tokenizer.json")
    else:
        from transformers import AutoTokenizer

        fix = f"pass a local folder with tokenizer.json or use the bundled {flag(option, DEFAULT_TOKENIZER)}"
        if not path.exists():  # a Hub name: transformers would retry an unreachable Hub for about a minute
            require_hub(f"could not load tokenizer {name_or_path!r}", fix)
        try:
            loaded = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=False)
        except ValueError as e:
            if "trust_remote_code" not in str(e):
                raise TinyStoriesError(f"could not load tokenizer {name_or_path!r} ({str(e).splitlines()[0]}); "
                                       f"{fix}") from None
            raise TinyStoriesError(f"tokenizer {name_or_path!r} loads only by running Python code it ships (its "
                                   "tokenizer_config.json's auto_map), which tinystories-hf never runs; pass a "
                                   "folder with tokenizer.json or a SentencePiece .model") from None
        except OSError as e:
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
    `unk_token`, as transformers reads them (UNK, where it names none: the model's `unk_token`). A
    tinystories-hf folder: a full vocabulary's recorded EOS, BOS and UNK; a reduced one's base, as a bare one.
    Otherwise (the bundled GPT-2 BPE, a bare tokenizer.json): an added special token of a well-known name
    (`SPECIAL_NAMES`; GPT-2's `<|endoftext|>` is its EOS, and it has no BOS), and the BPE model's `unk_token`.

    Example:
        >>> base_special_ids(load_base_tokenizer())
        {'eos': 50256, 'bos': None, 'unk': None}
    """
    own = None if name_or_path == DEFAULT_TOKENIZER else own_folder(name_or_path)
    if own is not None:  # a tinystories-hf folder: a full vocabulary's recorded specials, else its base's own
        data = read_json(own / VOCAB_FILE, VOCAB_SCHEMA, fix="re-create it with tinystories-prepare")
        if data["base_ids"] is None:
            return {kind: data.get(f"{kind}_id") for kind in SPECIAL_NAMES}
    if getattr(tokenizer, "kind", None) == "sentencepiece":
        return {"eos": tokenizer.eos_id, "bos": tokenizer.bos_id, "unk": tokenizer.unk_id}
    folder = Path(name_or_path).expanduser()
    folder = folder.parent if folder.is_file() else folder
    named = {}
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if name_or_path != DEFAULT_TOKENIZER and own is None and (folder / name).is_file() and not named:
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
        unk = getattr(tokenizer.model, "unk_token", None)  # the model's own (WordPiece, BPE, WordLevel; not Unigram)
        found["unk"] = tokenizer.token_to_id(unk) if isinstance(unk, str) else None
    return found


def special_ids(tokenizer) -> set:
    """Ids of the tokenizer's special added tokens (e.g. `<|endoftext|>`)."""
    return {i for i, token in tokenizer.get_added_tokens_decoder().items() if token.special}


BACKENDS = ("auto", "fastokens", "tiktoken", "hf", "sentencepiece")


def make_encoder(tokenizer, backend: str = "auto"):
    """The encoder for `backend` (auto, fastokens, tiktoken, hf or sentencepiece).

    auto picks the fastest exact encoder, whose ids every prepare checks on a seeded sample against the
    reference (`tokenize.check_sample`): for the GPT-2/GPT-Neo BPE fastokens (tiktoken the reference; a
    difference stops the run), for any other tokenizer.json fastokens on that file (`tokenizers` the
    reference), for a SentencePiece BPE model fastokens on its converted form (sentencepiece_fast.py;
    sentencepiece the reference). For the last two a difference found by the check makes prepare encode with
    the reference instead (`encoder.fallback`), said in its summary line and recorded in prepare_info.json.
    Where fastokens is missing or cannot serve the tokenizer, auto gives the reference and `encoder.note` says
    why. tiktoken serves only the GPT-2 BPE, hf only tokenizer.json files, sentencepiece only `.model` files.

    Raises:
        TinyStoriesError: an unknown backend, or one that cannot serve this tokenizer (the line names one that can).
    """
    if backend not in BACKENDS:
        raise TinyStoriesError(f"unknown backend {backend!r}; use {', '.join(BACKENDS)}")
    if getattr(tokenizer, "kind", None) == "sentencepiece":
        return _sentencepiece_encoder(tokenizer, backend)
    if backend == "sentencepiece":
        raise TinyStoriesError(f"{flag('backend', backend)} encodes only a SentencePiece .model; use "
                               f"{flag('backend', 'auto')} or {flag('backend', 'hf')} for this tokenizer")
    if backend == "hf":
        return HFEncoder(tokenizer)
    gpt2 = is_gpt2_bpe(tokenizer)
    if backend == "tiktoken" and not gpt2:
        raise TinyStoriesError(f"{flag('backend', backend)} only supports the GPT-2/GPT-Neo BPE; use "
                               f"{flag('backend', 'auto')} or {flag('backend', 'hf')} for this tokenizer")
    if backend == "fastokens" and not fastokens_available():
        raise TinyStoriesError(f"{flag('backend', 'fastokens')} needs the package {FAST_PACKAGE}, which is not "
                               f"installed; pip install {FAST_PACKAGE}, or use "
                               f"{flag('backend', 'tiktoken' if gpt2 else 'auto')} (same ids, slower)")
    if not gpt2:
        return _tokenizer_json_encoder(tokenizer, backend)
    if backend == "tiktoken" or not fastokens_available():
        encoder = TiktokenEncoder()
        if backend == "auto":
            encoder.note = f"auto: {FAST_PACKAGE} is not installed here; tiktoken gives the same ids, slower"
        return encoder
    return FastokensEncoder()


def _tokenizer_json_encoder(tokenizer, backend: str):
    """fastokens on any tokenizer.json but GPT-2's (auto or fastokens), else `tokenizers` with the reason."""
    spec = tokenizer.to_str()
    problem = fastokens_problem(spec) if fastokens_available() else f"{FAST_PACKAGE} is not installed here"
    if problem is None:
        encoder = FastTokenizerJsonEncoder(spec, vocab_size=id_space(tokenizer))
        encoder.fallback = backend == "auto"
        return encoder
    if backend == "fastokens":
        raise TinyStoriesError(f"{flag('backend', backend)}: {FAST_PACKAGE} cannot load this tokenizer.json "
                               f"({problem}); use {flag('backend', 'auto')} (tokenizers gives its ids)")
    encoder = HFEncoder(tokenizer)
    encoder.note = f"auto: {problem}; tokenizers gives the ids, slower"
    return encoder


def _sentencepiece_encoder(tokenizer, backend: str):
    """fastokens on the model's converted form (auto or fastokens), else sentencepiece itself with the reason."""
    if backend in ("tiktoken", "hf"):
        raise TinyStoriesError(f"{flag('backend', backend)} does not encode a SentencePiece model; use "
                               f"{flag('backend', 'auto')} or {flag('backend', 'sentencepiece')} (llama2.c's ids)")
    if backend == "sentencepiece":
        return SentencePieceEncoder(tokenizer)
    fast, problem = (None, f"{FAST_PACKAGE} is not installed here") if not fastokens_available() else \
        SentencePieceFastEncoder.for_model(tokenizer)
    if fast is not None:
        problem = fastokens_problem(fast.spec)
    if problem is None:
        fast.fallback = backend == "auto"
        return fast
    if backend == "fastokens":
        raise TinyStoriesError(f"{flag('backend', backend)}: this SentencePiece model has no exact fast form "
                               f"({problem}); use {flag('backend', 'auto')} (sentencepiece gives its ids)")
    encoder = SentencePieceEncoder(tokenizer)
    encoder.note = f"auto: no exact fast form of this model ({problem}); sentencepiece gives the ids, slower"
    return encoder
