"""karpathy/llm.c's token shards, which KellerJordan/modded-nanogpt reads too: `{name}_val_000000.bin`,
`{name}_train_000001.bin`, ...

As llm.c's `dev/data/data_common.py write_datafile` writes them: a header of 256 little-endian int32 (magic,
version, the shard's token count, zeros: 1,024 bytes), then the tokens. Two variants, named as llm.c's data
scripts name them (`-m/--model_desc`, here `--model-desc`):

  * `gpt-2` (the default): magic 20240520, version 1, uint16 tokens. The only variant llm.c's C/CUDA loader
    (`llmc/dataloader.h`: magic, version, file size == 1024 + 2 x count), its `train_gpt2.py` and
    modded-nanogpt's `_load_data_shard` read; a vocabulary of more than 65,536 ids cannot be written so.
  * `llama-3`: magic 20240801, version 7, uint32 tokens, read by llm.c's `train_llama3.py` only.

Each story is `text.strip()` encoded with the separator before it, as llm.c's `dev/data/tinystories.py`
(`all_tokens.append(eot); all_tokens.extend(encode(text.strip()))`): GPT-2's EOT 50256 for GPT-2's
vocabulary, the BOS where the vocabulary has one (llm.c's llama-3 uses `<|begin_of_text|>`), else its EOS.
Every shard thus starts on a story, the token modded-nanogpt aligns its batches to (its `BOS_ID = 50256`).
The validation split comes first as fineweb.py names shards (`{name}_{split}_{index:06d}.bin`, index 0 is
`val`), then train; `tinystories.py` itself writes one unsharded `TinyStories_{val,train}.bin` per split.

Shards hold whole stories, at most `--shard-tokens` tokens (default 10^8, llm.c's fineweb shard size, 200 MB
of uint16: the size modded-nanogpt's loader reads into memory at once), and a split is cut into shards of
nearly equal size (no small last shard: llm.c's loader asserts every shard holds `B x T x processes + 1`
tokens). Each shard stays under 2^31 tokens, as `write_datafile` asserts.
"""
import itertools
import math
from pathlib import Path

import numpy as np

from ..errors import TinyStoriesError, flag
from .frames import StreamWriter

HEADERS = {"gpt-2": (20240520, 1, "<u2"), "llama-3": (20240801, 7, "<u4")}  # magic, version, token dtype
HEADER_INTS = 256
UINT16_IDS = 65_536
MAX_SHARD_TOKENS = 2**31 - 1  # write_datafile: assert len(toks) < 2**31
MAX_SHARDS = 1_000_000  # index {:06d}: names sort in order up to here


def check_vocabulary(tokenizer, config) -> None:
    if config.model_desc == "gpt-2" and tokenizer.vocab_size > UINT16_IDS:
        raise TinyStoriesError(f"{config.prepared}: its vocabulary of {tokenizer.vocab_size:,} ids does not fit the "
                               f"uint16 ids of llm.c's gpt-2 shards (at most {UINT16_IDS:,}), the only ones llm.c's "
                               "train_gpt2 and modded-nanogpt read; pass "
                               f"{flag('model_desc', 'llama-3')} (uint32) for llm.c's train_llama3.py, or prepare "
                               "a smaller vocabulary")


def shard_bounds(tokens: np.ndarray, limit: int) -> list:
    """`[(first, end)]` story ranges of nearly equal token counts, each at most `limit`, whole stories: the
    fewest shards that hold them. `tokens` is each story's count with its separator.

    Example:
        >>> shard_bounds(np.array([3, 3, 3, 3, 3]), 9)
        [(0, 3), (3, 5)]
    """
    if len(tokens) == 0:
        return []
    cum = np.concatenate([[0], np.cumsum(tokens, dtype=np.int64)])
    n = max(1, math.ceil(int(cum[-1]) / limit))
    while True:
        targets = cum[-1] * np.arange(1, n) / n
        bounds = np.unique(np.concatenate([[0], np.searchsorted(cum, targets, side="left"), [len(tokens)]]))
        if int(np.diff(cum[bounds]).max()) <= limit:
            return [(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
        n += 1  # a story straddling a cut made one shard too large: one shard more


def plan(splits, tokenizer, config) -> list:
    """`[(file, split, first row, end row)]`: the validation shards, then the train shards, one index."""
    for split in ("train", "validation"):
        if split not in splits or splits[split].num_rows == 0:
            raise TinyStoriesError(f"{config.prepared}: no stories in a {split!r} split; llm.c and modded-nanogpt "
                                   "read a val and a train file pattern")
    plan = []
    for split, short in (("validation", "val"), ("train", "train")):
        tokens = splits[split].lengths + 1  # each story and its separator
        longest = int(tokens.max())
        if longest > config.shard_tokens:
            row = int(np.argmax(tokens))
            raise TinyStoriesError(f"{split} story {row:,} has {longest:,} tokens with its separator, more than "
                                   f"{flag('shard_tokens', config.shard_tokens)}; raise it")
        for first, end in shard_bounds(tokens, config.shard_tokens):
            plan.append((f"{config.name}_{short}_{len(plan):06d}.bin", split, first, end))
    if len(plan) > MAX_SHARDS:
        raise TinyStoriesError(f"{len(plan):,} shards of {flag('shard_tokens', config.shard_tokens)}: their 6-digit "
                               f"indices sort in order only up to {MAX_SHARDS:,}; raise it")
    return plan


def layout(tokenizer, config) -> dict:
    return {"anchor": None, "record": "export_info.json"}


def frame(tokenizer) -> tuple:
    """`(separator id, before)`: the BOS, or the EOS (GPT-2's EOT) where there is none, before each story."""
    return (tokenizer.bos_id if tokenizer.bos_id is not None else tokenizer.separator_id), True


def header(model_desc: str, tokens: int) -> bytes:
    """The 1,024-byte header of a shard of `tokens` tokens.

    Example:
        >>> np.frombuffer(header("gpt-2", 7), "<i4")[:4].tolist()
        [20240520, 1, 7, 0]
    """
    magic, version, _ = HEADERS[model_desc]
    ints = np.zeros(HEADER_INTS, dtype="<i4")
    ints[:3] = magic, version, tokens
    return ints.tobytes()


class ShardWriter(StreamWriter):
    """One shard: its header (the token count known from the plan), then the framed stories.

    Example:
        >>> w = ShardWriter(Path("s.bin"), "s.bin", tokens=3, model_desc="gpt-2")  # doctest: +SKIP
        >>> w.write(np.array([2]), np.array([50256, 7, 8], np.uint16))  # doctest: +SKIP
        >>> w.close()["s.bin"]["bytes"]  # doctest: +SKIP
        1030
    """

    def __init__(self, path: Path, name: str, *, tokens: int, model_desc: str):
        if not 0 < tokens <= MAX_SHARD_TOKENS:
            raise ValueError(f"{name}: {tokens} tokens")
        super().__init__(path, name, dtype=HEADERS[model_desc][2], header=header(model_desc, tokens))
        self.expected = tokens

    def close(self) -> dict:
        record = super().close()
        if self.tokens != self.expected:  # the lengths were checked against the ids while writing
            raise RuntimeError(f"{self.name}: {self.tokens} tokens written, {self.expected} in its header")
        return record


def files(name: str) -> list:
    return [name]


def writer(root: Path, name: str, *, tokens: int, stories: int, tokenizer, config) -> ShardWriter:
    return ShardWriter(root / name, name, tokens=tokens, model_desc=config.model_desc)


def describe(tokenizer, config) -> dict:
    magic, version, dtype = HEADERS[config.model_desc]
    kind = "uint16" if dtype == "<u2" else "uint32"
    return {"dtype": f"{kind} little-endian after a header of 256 int32 (magic {magic}, version {version}, the "
                     f"shard's token count)", "model_desc": config.model_desc}


def extra_files(tokenizer, prepared: Path) -> dict:
    return {}
