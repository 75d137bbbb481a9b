"""A SentencePiece BPE model (llama2.c's `tok{N}.model`, Llama 2's `tokenizer.model`) as a `tokenizer.json` that
fastokens encodes tens of times faster than sentencepiece, with the same ids; `tokenize.check_sample` compares
a seeded sample with `SentencePieceProcessor.encode` on every run.

The conversion (`convert`) follows transformers' `LlamaConverter` (the vocabulary, merges from every split of
every piece into two pieces, ordered by the piece's score, `byte_fallback`), and adds what the model's
`normalizer_spec` asks and Llama's does not: llama2.c's models keep sentencepiece's default
`remove_extra_whitespaces`, so leading and trailing spaces are dropped and every run of spaces is one.
`SentencePieceProcessor.encode` then normalizes as:

    leading ' ' removed -> '▁' prepended (add_dummy_prefix) -> each run of ' ' one '▁' -> trailing '▁' removed

(normalizer.cc; a text of spaces only gives no ids), which four `Replace`/`Prepend` normalizers spell.

Speed: sentencepiece merges the pair whose merged piece scores highest anywhere in the text, so a converted
form without a pre-tokenizer must treat a whole story as one word (no per-word cache). When no piece holds a
'▁' after another character (sentencepiece's trainer splits words before each '▁' run unless
`split_by_whitespace` is off), no merge crosses such a point, and splitting the text there first changes no
id: merges in different words never interact. The converted form then splits there (`Split` on `▁*[^▁]+|▁+`).

What it cannot reproduce, and then `convert` says why (the encoder is sentencepiece itself): a model type
other than BPE, a precompiled normalization (nmt_nfkc), `treat_whitespace_as_suffix`, user-defined or unused
pieces, no byte fallback. One difference remains possible, the reason for the check: two different pairs
that merge into the same piece at overlapping places (`ab|a` and `a|ba` into `aba`) are ordered by position
in sentencepiece, by merge rank here.
"""
import functools
import json

import numpy as np
import regex

from .encoders import FastTokenizerJsonEncoder
from .sentencepiece_base import SentencePieceEncoder, SentencePieceTokenizer

SPACE = "\u2581"  # sentencepiece's kSpaceSymbol
# What the apostrophe becomes before GPT-2's pre-tokenizer, whose contraction rule would cut "C'mon" into
# "C", "'m", "on": a Unicode noncharacter, punctuation to that regex as the apostrophe is, and never text. A
# story that holds it is encoded by sentencepiece itself.
STAND_IN = "\ufdd0"
MODEL_TYPES = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}
PIECE_TYPES = {1: "normal", 2: "unknown", 3: "control", 4: "user-defined", 5: "unused", 6: "byte"}


def _varint(data: bytes, i: int) -> tuple:
    value = shift = 0
    while True:
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if byte < 0x80:
            return value, i


def _fields(data: bytes) -> dict:
    """{field number: last value} of a serialized protobuf message: varints as int, length-delimited as bytes
    (enough for the scalar settings of `TrainerSpec` and `NormalizerSpec`; repeated fields keep the last)."""
    fields, i = {}, 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            fields[number], i = _varint(data, i)
        elif wire == 2:
            size, i = _varint(data, i)
            fields[number], i = data[i:i + size], i + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            fields[number], i = data[i:i + size], i + size
        else:
            raise ValueError(f"wire type {wire}")
    return fields


def model_settings(model: bytes) -> dict:
    """The settings of a serialized `ModelProto` that decide its ids (sentencepiece_model.proto's defaults
    where a field is absent)."""
    top, types, i = _fields(model), [], 0
    while i < len(model):  # the repeated field 1 (pieces): each piece's type (field 3, NORMAL by default)
        key, i = _varint(model, i)
        if key & 7 == 0:
            _, i = _varint(model, i)
            continue
        size, i = _varint(model, i) if key & 7 == 2 else (8 if key & 7 == 1 else 4, i)
        if key == (1 << 3 | 2):
            types.append(PIECE_TYPES.get(_fields(model[i:i + size]).get(3, 1), "unknown type"))
        i += size
    trainer, normalizer = _fields(top.get(2, b"")), _fields(top.get(3, b""))
    return {"model_type": MODEL_TYPES.get(trainer.get(3, 1), "unknown"), "byte_fallback": bool(trainer.get(35, 0)),
            "treat_whitespace_as_suffix": bool(trainer.get(24, 0)),
            "normalization": normalizer.get(1, b"").decode("utf-8", "replace"),
            "precompiled_charsmap": bool(normalizer.get(2, b"")),
            "add_dummy_prefix": bool(normalizer.get(3, 1)), "remove_extra_whitespaces": bool(normalizer.get(4, 1)),
            "escape_whitespaces": bool(normalizer.get(5, 1)), "piece_types": types}


def convert(tokenizer) -> tuple:
    """((tokenizer.json text, {partial character id: its byte pieces' ids}), None), or (None, why it cannot be
    converted exactly), for a `SentencePieceTokenizer`."""
    try:
        settings = model_settings(tokenizer.model)
    except (IndexError, ValueError, UnicodeDecodeError) as e:
        return None, f"its settings could not be read ({e})"
    p = tokenizer.processor
    size, kinds = p.get_piece_size(), settings["piece_types"]
    pieces = [p.id_to_piece(i) for i in range(size)]
    normal = [i for i in range(size) if kinds[i] == "normal"]
    problems = [why for bad, why in [
        (settings["model_type"] != "bpe", f"a {settings['model_type']} model, not BPE"),
        (settings["precompiled_charsmap"], f"a precompiled normalization ({settings['normalization']})"),
        (settings["treat_whitespace_as_suffix"], "treat_whitespace_as_suffix"),
        (not settings["escape_whitespaces"], "escape_whitespaces off"),
        (not settings["byte_fallback"], "no byte fallback"),
        (len(kinds) != size, "pieces that could not be read"),
        (bool(set(kinds) - {"normal", "unknown", "control", "byte"}),
         f"{', '.join(sorted(set(kinds) - {'normal', 'unknown', 'control', 'byte'}))} pieces"),
        (p.unk_id() < 0, "no unknown piece")] if bad]
    if problems:
        return None, "; ".join(problems)
    byte_ids = {int(pieces[i][3:5], 16): i for i in range(size) if kinds[i] == "byte"}
    if len(byte_ids) != 256:
        return None, f"{len(byte_ids)} byte pieces, not 256"
    if any(STAND_IN in pieces[i] for i in normal) or "'" not in pieces:
        return None, f"a piece holds U+{ord(STAND_IN):04X}, or the apostrophe is no piece"
    # as the text holds it once normalized
    text = {i: pieces[i].replace(SPACE, " ").replace("'", STAND_IN) for i in normal}
    split_apart = [pieces[i] for i in normal if len(GPT2_SPLIT.findall(text[i])) != 1 or
                   len(text[i]) > 1 and text[i][-1].isspace()]
    if split_apart:
        return None, (f"{len(split_apart)} pieces span a point where GPT-2's pre-tokenizer splits (the first: "
                      f"{split_apart[0]!r})")
    scores = {i: p.get_score(i) for i in normal}
    return _byte_level_spec(settings, pieces, normal, text, scores, byte_ids, unk=p.unk_id()), None


# GPT-2's pre-tokenizer (the regex of tokenizers' ByteLevel pre-tokenizer): no piece may span two of its
# pre-tokens, and a piece may end in whitespace only if it is one character.
GPT2_SPLIT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def _byte_level_spec(settings: dict, pieces: list, normal: list, text: dict, scores: dict, byte_ids: dict, *,
                     unk: int) -> tuple:
    """(tokenizer.json text, {partial id: its byte pieces' ids}) of the byte-level form (module docstring)."""
    unicode_of = _bytes_to_unicode()
    spell = lambda data: "".join(unicode_of[b] for b in data)
    size = len(pieces)
    vocab = {spell([b]): i for b, i in byte_ids.items()}
    for i in normal:
        vocab[spell(text[i].encode())] = i  # a one-byte character that is a piece replaces its byte piece
    # Every id has a token (fastokens wants no gap): the others under their own names, which no merge makes.
    vocab.update({pieces[i]: i for i in sorted(set(range(size)) - set(vocab.values()))})
    # First, every character that is a piece, from its UTF-8 bytes (sentencepiece starts from characters);
    # prefixes of several bytes that are no piece get ids from `size` up: `partial` maps them back to bytes.
    char_merges, partial = [], {}
    for i in normal:
        data = text[i].encode()
        if len(text[i]) != 1 or len(data) == 1:
            continue
        for k in range(2, len(data) + 1):
            merge = [spell(data[:k - 1]), spell(data[k - 1:k])]
            if spell(data[:k]) not in vocab:
                partial[size + len(partial)] = [byte_ids[b] for b in data[:k]]
                vocab[spell(data[:k])] = size + len(partial) - 1
                char_merges.append(merge)
            elif merge not in char_merges and k == len(data):
                char_merges.append(merge)
    # Then every split of a piece into two pieces, ranked by the merged piece's score (highest first, as
    # sentencepiece's agenda), then by id: transformers' SentencePieceExtractor's order.
    index = {text[i]: i for i in normal}
    merges = sorted(((text[i][:k], text[i][k:], i) for i in normal for k in range(1, len(text[i]))
                     if text[i][:k] in index and text[i][k:] in index),
                    key=lambda m: (-scores[m[2]], m[2], index[m[0]], index[m[1]]))
    merges = char_merges + [[spell(a.encode()), spell(b.encode())] for a, b, _ in merges]
    normalizers = [{"type": "Replace", "pattern": {"String": "'"}, "content": STAND_IN}]
    if settings["remove_extra_whitespaces"]:
        normalizers += [_replace("^ +", ""), _replace(" {2,}", " ")]
    if settings["add_dummy_prefix"]:
        normalizers.append({"type": "Prepend", "prepend": " "})
    normalizers.append({"type": "Replace", "pattern": {"String": SPACE}, "content": " "})
    if settings["remove_extra_whitespaces"]:
        normalizers.append(_replace(" +$", ""))
    spec = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
            "normalizer": {"type": "Sequence", "normalizers": normalizers},
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "post_processor": None, "decoder": None,
            "model": {"type": "BPE", "dropout": None, "unk_token": pieces[unk], "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                      "vocab": vocab, "merges": merges}}
    return json.dumps(spec, ensure_ascii=False), partial


def _replace(regex_text: str, content: str) -> dict:
    return {"type": "Replace", "pattern": {"Regex": regex_text}, "content": content}


def _bytes_to_unicode() -> dict:
    """GPT-2's byte -> printable character table (the ByteLevel pre-tokenizer's)."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = [b for b in range(256) if b not in kept]
    return {**{b: chr(b) for b in kept}, **{b: chr(256 + i) for i, b in enumerate(shifted)}}


@functools.lru_cache(maxsize=4)
def _converted(sha256: str, model: bytes) -> tuple:
    return convert(SentencePieceTokenizer(model))


class SentencePieceFastEncoder(FastTokenizerJsonEncoder):
    """Base ids of a SentencePiece BPE model from fastokens on its converted form (`convert`), checked on every
    run against `SentencePieceProcessor.encode` (the `reference`). Pickled as the model's bytes, rebuilt on
    unpickling (forked workers find the native tokenizer built once in the parent).

    Example:
        >>> enc, why = SentencePieceFastEncoder.for_model(SentencePieceTokenizer.from_file("tok4096.model"))  # doctest: +SKIP
        >>> enc.encode_batch(["Once upon a time"]) == enc.reference().encode_batch(["Once upon a time"])  # doctest: +SKIP
        True
    """

    def __init__(self, tokenizer, spec: str, partial: dict):
        self.tokenizer = tokenizer
        super().__init__(spec, vocab_size=tokenizer.get_vocab_size(), identity="sentencepiece:" + tokenizer.sha256)
        # partial character id -> its byte pieces, as a table over every id the converted form gives
        self.partial = partial

    def reference(self):
        return SentencePieceEncoder(self.tokenizer)

    def encode_flat(self, texts: list, dtype) -> tuple:
        texts = list(texts)
        if any(STAND_IN in text for text in texts):  # never in real text: those stories by sentencepiece
            ids = [self.reference().encode_batch([t])[0] if STAND_IN in t else self.encode_batch([t])[0] for t in texts]
            lengths = np.array([len(i) for i in ids], dtype=np.int64)
            return lengths, np.array([t for i in ids for t in i], dtype=dtype)
        lengths, values = super().encode_flat(texts, np.uint32)
        if self.partial and values.size and values.max() >= self.vocab_size:  # a character not in the model
            lengths, values = self._bytes_of_partials(lengths, values)
        return lengths, values.astype(dtype)

    def _bytes_of_partials(self, lengths: np.ndarray, values: np.ndarray) -> tuple:
        """The ids with each partial character id replaced by its byte pieces' ids (sentencepiece's byte
        fallback of a character that is no piece), the lengths with them."""
        counts = np.ones(len(values), dtype=np.int64)
        hit = values >= self.vocab_size
        counts[hit] = [len(self.partial[int(v)]) for v in values[hit]]
        out = np.repeat(values, counts)
        starts = np.cumsum(counts) - counts
        for position, v in zip(starts[hit], values[hit]):
            out[position:position + len(self.partial[int(v)])] = self.partial[int(v)]
        story = np.repeat(np.arange(len(lengths)), lengths)
        return np.bincount(story, weights=counts, minlength=len(lengths)).astype(np.int64), out

    def __getstate__(self):
        return {"model": self.tokenizer.model, "path": self.tokenizer.path, "note": self.note,
                "fallback": self.fallback}

    def __setstate__(self, state):
        tokenizer = SentencePieceTokenizer(state["model"], path=state["path"])
        converted, _ = _converted(tokenizer.sha256, tokenizer.model)  # the same bytes: converted as before
        self.__init__(tokenizer, *converted)
        self.note, self.fallback = state["note"], state["fallback"]

    @classmethod
    def for_model(cls, tokenizer) -> tuple:
        """(the encoder, None), or (None, why the model cannot be converted exactly)."""
        converted, why = _converted(tokenizer.sha256, tokenizer.model)
        return (cls(tokenizer, *converted), None) if converted else (None, why)
