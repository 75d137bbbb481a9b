"""A tinystories-hf tokenizer folder as a transformers tokenizer: `AutoTokenizer.from_pretrained(DIR,
trust_remote_code=True)`, with the ids stored in the prepared dataset.

This file is copied into every tokenizer folder whose ids `tokenizer.json` cannot express, and transformers
runs it from there (its `auto_map` mechanism, as Qwen ships its tiktoken tokenizer): the GPT-Neo BPE reduced
to its most frequent tokens (every other token is UNK, which no BPE merge table or post-processor can map),
and SentencePiece models, whose own encoder (llama2.c's `Tokenizer.encode`) is the reference. It needs
transformers and tokenizers (sentencepiece for a `.model` base) and nothing of tinystories-hf; it reads two
files of its folder (`tinystories_vocab.json`, JSON; the base tokenizer, JSON or SentencePiece protobuf, at
one of the three places `BASE_FILES` a folder keeps it: any other `base_file` is refused, so a folder cannot
make it read, or `save_pretrained` write, outside the folder), never the network, never a pickle.

    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained("tinystories_prepared/tokenizer", trust_remote_code=True)
    batch = tok(["Once upon a time", "The dog"], padding=True, return_tensors="pt")
    tok.batch_decode(batch["input_ids"], skip_special_tokens=True)

Ids: for a reduced vocabulary, 0 is EOS `<|endoftext|>`, 1 is UNK `<|unk|>`, 2.. are base tokens by their
`base_ids` entry in `tinystories_vocab.json`; for a full one, the base tokenizer's own ids. Story text is
ordinary text: a literal `<|endoftext|>` in it is encoded as its characters (`split_special_tokens=True`),
never as EOS, as in the stored ids. No BOS or EOS is added (`add_special_tokens` changes nothing).
"""
import itertools
import json
import os
from typing import ClassVar

from transformers import PreTrainedTokenizer

VOCAB_FILES = {"vocab_file": "tinystories_vocab.json", "tokenizers_file": "base/tokenizer.json",
               "sentencepiece_file": "base/tokenizer.model"}
BASE_FILES = ("base/tokenizer.json", "tokenizer.json", "base/tokenizer.model")  # relative to the folder


def _base_file(table, where) -> str:
    """The folder's `base_file` (default `base/tokenizer.json`), one of `BASE_FILES`; else `ValueError`."""
    name = table.get("base_file") or VOCAB_FILES["tokenizers_file"] if isinstance(table, dict) else None
    if name not in BASE_FILES:
        raise ValueError(f"{where}: base_file {name!r} is not one of {', '.join(BASE_FILES)} (a file of this "
                         "folder); the folder was altered, re-create it with tinystories-prepare")
    return name


class TinyStoriesHFTokenizer(PreTrainedTokenizer):
    """The tokenizer of a tinystories-hf folder, for transformers (`AutoTokenizer`, `model.generate`).

    Example:
        >>> tok = AutoTokenizer.from_pretrained("tinystories_prepared/tokenizer", trust_remote_code=True)  # doctest: +SKIP
        >>> tok("Once upon a time")["input_ids"]  # doctest: +SKIP
        [53, 57, 7, 43]
    """

    vocab_files_names = VOCAB_FILES
    model_input_names: ClassVar[list] = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file=None, tokenizers_file=None, sentencepiece_file=None, **kwargs):
        with open(vocab_file, encoding="utf-8") as f:
            self.table = json.load(f)
        folder = os.path.dirname(vocab_file)
        base = os.path.join(folder, _base_file(self.table, vocab_file))
        if base.endswith(".model"):
            import sentencepiece

            self.sentencepiece = sentencepiece.SentencePieceProcessor(model_file=sentencepiece_file or base)
            self.base = None
            base_size = self.sentencepiece.get_piece_size()
        else:
            from tokenizers import Tokenizer

            self.base, self.sentencepiece = Tokenizer.from_file(tokenizers_file or base), None
            self.base.encode_special_tokens = True  # a special token's text in a story is ordinary text
            # the largest id + 1, not the token count: a tokenizer.json may leave ids unused
            base_size = max(self.base.get_vocab(with_added_tokens=True).values(), default=-1) + 1
        self.base_ids = self.table.get("base_ids")  # reduced id -> base id (-1: EOS/UNK of ours), or None: full
        self.reduced = None if self.base_ids is None else {b: i for i, b in enumerate(self.base_ids) if i >= 2}
        self.unk_id = self.table.get("unk_id")
        self.size = base_size if self.base_ids is None else len(self.base_ids)
        kwargs.setdefault("split_special_tokens", True)
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        super().__init__(**kwargs)

    def __setstate__(self, state):
        # copy.deepcopy and pickle rebuild the base Tokenizer from its JSON, which does not hold
        # encode_special_tokens: set it again, or a copy would encode `<|endoftext|>` in a story as EOS.
        self.__dict__.update(state)
        if self.base is not None:
            self.base.encode_special_tokens = True

    @property
    def vocab_size(self) -> int:
        return self.size

    def get_vocab(self) -> dict:
        vocab = {self._convert_id_to_token(i): i for i in range(self.size)}
        vocab.update(self.added_tokens_encoder)
        return vocab

    def _tokenize(self, text, **kwargs):
        if self.sentencepiece is not None:
            return self.sentencepiece.encode(text, out_type=str)
        return self.base.encode(text, add_special_tokens=False).tokens

    def _base_id(self, token: str):
        if self.sentencepiece is not None:
            i = self.sentencepiece.piece_to_id(token)
            return i if self.sentencepiece.id_to_piece(i) == token else self.sentencepiece.unk_id()
        return self.base.token_to_id(token)

    def _convert_token_to_id(self, token: str) -> int:
        base = self._base_id(token)
        if self.reduced is None:
            return base if base is not None else self.unk_id
        return self.reduced.get(base, self.unk_id)

    def _convert_id_to_token(self, index: int) -> str:
        base = index if self.base_ids is None else self.base_ids[index]
        if base < 0:
            return self.table["eos_token"] if index == self.table["eos_id"] else self.table["unk_token"]
        if self.sentencepiece is not None:
            return self.sentencepiece.id_to_piece(base)
        return self.base.id_to_token(base)

    def _decode(self, token_ids, skip_special_tokens: bool = False, clean_up_tokenization_spaces=None, **kwargs):
        """Text of the ids, decoded by the base tokenizer run by run between the specials (as the pipeline's
        `TinyStoriesTokenizer.decode` does): EOS and UNK appear as `<|endoftext|>` / `<|unk|>` unless skipped."""
        ids = [token_ids] if isinstance(token_ids, int) else [int(i) for i in token_ids]
        special = set(self.all_special_ids)
        runs, marks = [[]], []
        for i in ids:
            base = i if self.base_ids is None else self.base_ids[i]
            if i in special or base < 0:
                marks.append(i)
                runs.append([])
            else:
                runs[-1].append(base)
        texts = self._decode_runs(runs)
        pieces = [texts[0]]
        for mark, text in zip(marks, texts[1:]):
            pieces += [text] if skip_special_tokens else [self.convert_ids_to_tokens(mark), text]
        return "".join(pieces)

    def _decode_runs(self, runs: list) -> list:
        """The text of each run. SentencePiece: cut from its decode of all the runs joined (a decode of a run
        alone would drop the space of its first piece, `▁an`, as the start of a text)."""
        if self.sentencepiece is None:
            return [self.base.decode(run, skip_special_tokens=False) if run else "" for run in runs]
        ids = [i for run in runs for i in run]
        full = self.sentencepiece.decode(ids)
        offsets, count = [0], 0
        for run in runs[:-1]:
            count += len(run)
            head = self.sentencepiece.decode(ids[:count]) if count else ""
            offsets.append(max(offsets[-1], len(os.path.commonprefix([head, full]))))
        offsets.append(len(full))
        return [full[a:b] for a, b in itertools.pairwise(offsets)]

    def save_vocabulary(self, save_directory: str, filename_prefix=None) -> tuple:
        """Write `tinystories_vocab.json` and the base tokenizer file, at the paths this folder had."""
        prefix = f"{filename_prefix}-" if filename_prefix else ""
        base = os.path.join(save_directory, _base_file(self.table, "tinystories_vocab.json"))  # checked first
        vocab = os.path.join(save_directory, prefix + VOCAB_FILES["vocab_file"])
        with open(vocab, "w", encoding="utf-8") as f:
            json.dump(self.table, f)
        os.makedirs(os.path.dirname(base), exist_ok=True)
        if self.sentencepiece is not None:
            with open(base, "wb") as f:
                f.write(self.sentencepiece.serialized_model_proto())
        else:
            self.base.save(base)
        return vocab, base
