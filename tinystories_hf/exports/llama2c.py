"""karpathy/llama2.c's data layout: `data/tok{N}/*.bin` shards and `data/tok{N}.model`.

As its `tinystories.py pretokenize` writes them for a custom vocabulary (`process_shard`): each story
`text.strip()` (the sources contract strips every story too), encoded with BOS prepended and no EOS
(`enc.encode(text, bos=True, eos=False)`), stories concatenated, raw `np.uint16`, one file per shard.
`train.py`'s `PretokDataset` sorts the shard names, takes the first as the validation split and the others as
train, and stops on a shard of fewer than `2 * max_seq_len` tokens (`num_batches = len(m) // max_seq_len - 1`,
`assert num_batches > 0`). So `data00.bin` holds the validation split and `data01.bin`.. the train split, in
`--shard-stories` stories each (a last shard too small for `max_seq_len` joins the one before it).

The model for `sample.py`, `tokenizer.py --tokenizer-model` (run.c's `tokenizer.bin`) and the shards' name is
`tok{N}.model`, written when the vocabulary is SentencePiece (full, trained with llama2.c's settings or
Llama 2's). A vocabulary without a BOS (GPT-Neo's, reduced or full; a trained byte-level BPE) puts its EOS
before each story instead: the same one separator between stories. Splits other than train and validation
have no place in this layout and are not written.

`--output` is llama2.c's `data/`, which holds other things (the downloaded stories, other vocabularies): the
export owns `tok{N}/` and `tok{N}.model` there, not the folder. Its `export_info.json` sits in `tok{N}/`
(`PretokDataset` reads only `*.bin`); the lock and the staging folder are `.tok{N}.lock` and
`.tok{N}.partial/` beside them, and the two entries are replaced together (`placement`).
"""
from pathlib import Path

from ..errors import TinyStoriesError, flag
from .frames import StreamWriter

UINT16_IDS = 65_536


def check_vocabulary(tokenizer, config) -> None:
    if tokenizer.vocab_size > UINT16_IDS:
        raise TinyStoriesError(f"{config.prepared}: its vocabulary of {tokenizer.vocab_size:,} ids does not fit the "
                               f"uint16 ids llama2c reads (at most {UINT16_IDS:,}); prepare it with a smaller "
                               "vocabulary")


def plan(splits, tokenizer, config) -> list:
    """`[(file, split, first row, end row)]`: `tok{N}/data00.bin` validation, then train shards."""
    for split in ("train", "validation"):
        if split not in splits or splits[split].num_rows == 0:
            raise TinyStoriesError(f"{config.prepared}: no stories in a {split!r} split; llama2.c's PretokDataset "
                                   "reads the first shard as validation and the others as train")
    folder, shortest = f"tok{tokenizer.vocab_size}", 2 * config.max_seq_len
    tokens = {split: splits[split].lengths + 1 for split in ("train", "validation")}  # each story and its BOS
    shards = [(a, min(a + config.shard_stories, splits["train"].num_rows))
              for a in range(0, splits["train"].num_rows, config.shard_stories)]
    if len(shards) > 1 and tokens["train"][shards[-1][0]:shards[-1][1]].sum() < shortest:
        shards[-2:] = [(shards[-2][0], shards[-1][1])]
    if len(shards) > 99:
        raise TinyStoriesError(f"{len(shards)} train shards of {flag('shard_stories', config.shard_stories)}: "
                               "their names data01..data99 sort in order only up to 99; raise it")
    plan = [(f"{folder}/data00.bin", "validation", 0, splits["validation"].num_rows)]
    plan += [(f"{folder}/data{i + 1:02d}.bin", "train", a, b) for i, (a, b) in enumerate(shards)]
    for name, split, a, b in plan:
        held = int(tokens[split][a:b].sum())
        if held < shortest:
            raise TinyStoriesError(f"{name} would hold {held:,} tokens ({split} stories {a:,}..{b - 1:,}), fewer "
                                   f"than 2 x {flag('max_seq_len', config.max_seq_len)}, and llama2.c's PretokDataset "
                                   f"stops on it; lower {flag('max_seq_len')} to the max_seq_len you train with, "
                                   f"raise {flag('shard_stories')}, or prepare more {split} stories")
    return plan


def layout(tokenizer, config) -> dict:
    """The entries `tok{N}/` and `tok{N}.model` in llama2.c's `data/`, recorded in `tok{N}/export_info.json`."""
    folder = f"tok{tokenizer.vocab_size}"
    return {"anchor": folder, "record": f"{folder}/export_info.json"}


def frame(tokenizer) -> tuple:
    """`(separator id, before)`: BOS before each story, or the EOS where the vocabulary has no BOS."""
    return (tokenizer.bos_id if tokenizer.bos_id is not None else tokenizer.separator_id), True


def files(name: str) -> list:
    return [name]


def writer(root: Path, name: str, *, tokens: int, stories: int, tokenizer, config) -> StreamWriter:
    return StreamWriter(root / name, name, dtype="<u2")


def describe(tokenizer, config) -> dict:
    return {"dtype": "uint16 little-endian, no header"}


def extra_files(tokenizer, prepared: Path) -> dict:
    """`tok{N}.model` when the vocabulary is a full SentencePiece model (the file the prepared folder holds)."""
    base = tokenizer.base_tokenizer
    if getattr(base, "kind", None) != "sentencepiece" or tokenizer.kind != "full":
        return {}
    return {f"tok{tokenizer.vocab_size}.model": base.model}
