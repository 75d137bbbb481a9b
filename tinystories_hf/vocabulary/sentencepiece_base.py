"""A SentencePiece model (`.model`: llama2.c's `tok4096.model`, Llama 2's `tokenizer.model`) as the base tokenizer.

Its ids are `SentencePieceProcessor.encode`'s, llama2.c's encoding (`Tokenizer.encode(text, bos=False,
eos=False)`): stories are encoded by sentencepiece itself in every worker, so there is no converted form to
check against it. `SentencePieceTokenizer` gives the pipeline the part of `tokenizers.Tokenizer`'s interface it
uses (ids, pieces, specials, decode, save); `SentencePieceEncoder` is the encoder of `make_encoder`. The package
comes in the `[sentencepiece]` extra; without it, one line names the extra.
"""
import hashlib
import itertools
import os
from pathlib import Path

import numpy as np

from ..errors import TinyStoriesError
from ..utils.extras import require
from .encoders import Encoder, without_lone_surrogates

MODEL_SUFFIX = ".model"
# A serialized ModelProto starts with field 1 (pieces, length-delimited): tag byte 0x0A.
_PROTO_START = b"\x0a"


def _sentencepiece():
    return require("sentencepiece", extra="sentencepiece", needed_by="a SentencePiece tokenizer (.model)")


class _Special:
    """What `get_added_tokens_decoder` gives for a control or unknown piece (tokenizers' AddedToken fields)."""

    special = True

    def __init__(self, content: str):
        self.content = content


class SentencePieceTokenizer:
    """A SentencePiece model, read from the bytes of its `.model` file (a protobuf, never a pickle).

    Raises `TinyStoriesError` naming `path` when the bytes are not a SentencePiece model.

    Example:
        >>> sp = SentencePieceTokenizer.from_file("tok4096.model")  # doctest: +SKIP
        >>> sp.get_vocab_size(), sp.eos_id, sp.bos_id, sp.unk_id  # doctest: +SKIP
        (4096, 2, 1, 0)
    """

    kind = "sentencepiece"

    def __init__(self, model: bytes, *, path=None):
        self.model, self.path = bytes(model), path
        spm = _sentencepiece()
        processor = spm.SentencePieceProcessor()
        try:
            if not self.model.startswith(_PROTO_START):
                raise RuntimeError("not a serialized ModelProto")
            processor.LoadFromSerializedProto(self.model)
            if processor.get_piece_size() < 1:
                raise RuntimeError("no pieces")
        except (RuntimeError, OSError) as e:
            raise TinyStoriesError(f"{path or 'the model'}: not a SentencePiece model ({str(e).splitlines()[0]:.120}); "
                                   "pass a .model file written by sentencepiece (llama2.c's train_vocab, "
                                   "tinystories-train-tokenizer --model sentencepiece)") from None
        self._processor = processor
        self.sha256 = hashlib.sha256(self.model).hexdigest()

    @classmethod
    def from_file(cls, path) -> "SentencePieceTokenizer":
        path = Path(path)
        return cls(path.read_bytes(), path=path)

    @property
    def processor(self):
        return self._processor

    def __getstate__(self):  # datasets' pool sends the encoder to its workers: the model's bytes, rebuilt there
        return {"model": self.model, "path": self.path}

    def __setstate__(self, state):
        self.__init__(state["model"], path=state["path"])

    # -- the part of tokenizers.Tokenizer the pipeline uses --------------------------------------------------
    def get_vocab_size(self, with_added_tokens: bool = True) -> int:
        return self._processor.get_piece_size()

    def token_to_id(self, token: str):
        i = self._processor.piece_to_id(token)
        return i if self._processor.id_to_piece(i) == token else None

    def id_to_token(self, i: int) -> str:
        return self._processor.id_to_piece(int(i))

    def get_added_tokens_decoder(self) -> dict:
        """Control and unknown pieces (`<s>`, `</s>`, `<unk>`): the specials no story's ids hold as text."""
        p = self._processor
        return {i: _Special(p.id_to_piece(i)) for i in range(p.get_piece_size())
                if p.is_control(i) or p.is_unknown(i)}

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self._processor.decode([int(i) for i in ids])

    def decode_runs(self, runs: list) -> list:
        """The text of each run of ids (the runs between the specials of a decoded sequence), cut from
        sentencepiece's decode of all of them joined, so `"".join(texts)` is exactly that decode: a run after
        the first keeps the space its first piece (`▁an`) carries, which a decode of the run alone drops as
        the start of a text. A cut falls where the text of the ids before it stops being a prefix (a
        character whose bytes a special splits goes to the run that completes it).

        Example:
            >>> sp.decode_runs([[409], [414, 464]])  # doctest: +SKIP
            ['happy', ' an all']
        """
        ids = [int(i) for run in runs for i in run]
        full = self._processor.decode(ids)
        offsets, count = [0], 0
        for run in runs[:-1]:
            count += len(run)
            head = self._processor.decode(ids[:count]) if count else ""
            offsets.append(max(offsets[-1], len(os.path.commonprefix([head, full]))))
        offsets.append(len(full))
        return [full[a:b] for a, b in itertools.pairwise(offsets)]

    def to_str(self) -> str:
        """What identifies the model, for `tokenizer_sha256`."""
        return "sentencepiece:" + self.sha256

    def save(self, path: str) -> None:
        Path(path).write_bytes(self.model)

    @property
    def eos_id(self):
        return _id_or_none(self._processor.eos_id())

    @property
    def bos_id(self):
        return _id_or_none(self._processor.bos_id())

    @property
    def unk_id(self):
        return _id_or_none(self._processor.unk_id())


def _id_or_none(i: int):
    return None if i < 0 else int(i)


class SentencePieceEncoder(Encoder):
    """Base ids from sentencepiece itself: `SentencePieceProcessor.encode` of each story (llama2.c's ids).

    Example:
        >>> SentencePieceEncoder(sp).encode_batch(["Once upon a time"])  # doctest: +SKIP
        [[403, 407, 261, 375]]
    """

    name = "sentencepiece"

    def __init__(self, tokenizer: SentencePieceTokenizer):
        self.tokenizer = tokenizer
        self.vocab_size = tokenizer.get_vocab_size()
        self.fingerprint = "sentencepiece:" + tokenizer.sha256

    def encode_batch(self, texts: list) -> list:
        try:
            return self.tokenizer.processor.encode(list(texts))
        except (UnicodeEncodeError, TypeError):  # a lone surrogate in a Python str (sentencepiece: TypeError)
            # U+FFFD, as the other encoders
            return self.tokenizer.processor.encode(without_lone_surrogates(list(texts)))

    def encode_flat(self, texts: list, dtype) -> tuple:
        """(lengths, values) as `HFEncoder.encode_flat`."""
        ids = self.encode_batch(texts)
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        return lengths, np.fromiter(itertools.chain.from_iterable(ids), dtype=dtype, count=int(lengths.sum()))
