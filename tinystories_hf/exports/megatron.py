"""NVIDIA Megatron-LM's indexed dataset (also NeMo's, and datatrove's `MegatronDocumentTokenizer`):
`PREFIX.bin` and `PREFIX.idx`, one prefix per split, `{name}_{split}_text_document`.

As `tools/preprocess_data.py --append-eod` writes it through `megatron/core/datasets/indexed_dataset.py`
(`IndexedDatasetBuilder.add_document` per story, then `finalize`):

  * `PREFIX.bin`: each story's ids followed by the EOD (the vocabulary's EOS, what Megatron's tokenizers
    call `eod`), one sequence per story, concatenated in the stored order, in the index's dtype;
  * `PREFIX.idx`, all little-endian: `MMIDIDX\\x00\\x00`, version 1 (uint64), the dtype code (uint8: 8 for
    uint16, 4 for int32), the sequence count and the document count (uint64), then each sequence's length
    (int32), its byte offset in the `.bin` (int64), and the document indices (int64: 0, 1, ..., one per
    story, so the count is stories + 1).

The dtype is Megatron's `DType.optimal_dtype(vocab_size)`: uint16 below 65,500 ids, int32 from there on.
The file name is what `preprocess_data.py --output-prefix {name}_{split} --json-keys text` writes, and
what `--data-path`, `--train-data-path` and `--valid-data-path` take (without `.bin`/`.idx`). Megatron does not
strip the text it encodes: the stories are those of the prepared folder, stripped by default.

The `.idx` is written in place as the stories stream (its three arrays at their offsets), so memory stays
flat here too; its sizes are known from the plan, and the lengths written are the ids read.
"""
import hashlib
import os
import struct
from pathlib import Path

import numpy as np

from ..errors import TinyStoriesError
from .frames import StreamWriter

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
CODES = {"<u2": 8, "<i4": 4}  # Megatron's DType: uint16 = 8, int32 = 4
OPTIMAL_UINT16_BELOW = 65_500  # DType.optimal_dtype: cardinality < 65500 -> uint16, else int32
MAX_IDS = 2**31  # int32 ids


def dtype(vocab_size: int) -> str:
    """Megatron's `DType.optimal_dtype(vocab_size)`, as a numpy dtype string.

    Example:
        >>> dtype(50_257), dtype(65_500)
        ('<u2', '<i4')
    """
    return "<u2" if vocab_size < OPTIMAL_UINT16_BELOW else "<i4"


def check_vocabulary(tokenizer, config) -> None:
    if tokenizer.vocab_size > MAX_IDS:
        raise TinyStoriesError(f"{config.prepared}: its vocabulary of {tokenizer.vocab_size:,} ids does not fit "
                               "Megatron's int32 ids; prepare it with a smaller vocabulary")


def plan(splits, tokenizer, config) -> list:
    """`[(prefix, split, first row, end row)]`: one prefix per split; train and validation must hold stories."""
    for split in ("train", "validation"):
        if split not in splits or splits[split].num_rows == 0:
            raise TinyStoriesError(f"{config.prepared}: no stories in a {split!r} split; Megatron trains on "
                                   "--train-data-path and validates on --valid-data-path")
    return [(f"{config.name}_{split}_text_document", split, 0, s.num_rows) for split, s in splits.items()]


def files(prefix: str) -> list:
    return [prefix + ".bin", prefix + ".idx"]


def layout(tokenizer, config) -> dict:
    return {"anchor": None, "record": "export_info.json"}


def frame(tokenizer) -> tuple:
    """`(separator id, before)`: the EOD (the vocabulary's EOS, else its separator) after each story."""
    return (tokenizer.eos_id if tokenizer.eos_id is not None else tokenizer.separator_id), False


def index_header(code: int, sequences: int) -> bytes:
    """The `.idx` header: magic, version, dtype code, sequence count, document count (sequences + 1).

    Example:
        >>> len(index_header(8, 3))
        34
    """
    return MAGIC + struct.pack("<Q", VERSION) + struct.pack("<B", code) + struct.pack("<QQ", sequences, sequences + 1)


class IndexedWriter:
    """`PREFIX.bin` through a `StreamWriter`, `PREFIX.idx` written in place at its three arrays' offsets.

    Example:
        >>> w = IndexedWriter(Path("."), "ts_train_text_document", stories=1, dtype="<u2")  # doctest: +SKIP
        >>> w.write(np.array([2]), np.array([7, 8, 50256], np.uint16))  # doctest: +SKIP
        >>> w.close()["ts_train_text_document.idx"]["bytes"]  # 34 + 4 + 8 + 2 x 8  # doctest: +SKIP
        62
    """

    def __init__(self, root: Path, prefix: str, *, stories: int, dtype: str):
        self.data = StreamWriter(root / (prefix + ".bin"), prefix + ".bin", dtype=dtype)
        self.dtype = self.data.dtype
        self.name, self.stories, self.itemsize = prefix + ".idx", stories, np.dtype(dtype).itemsize
        head = index_header(CODES[dtype], stories)
        self.at = {"lengths": len(head), "pointers": len(head) + 4 * stories,
                   "documents": len(head) + 12 * stories, "end": len(head) + 20 * stories + 8}
        self.path, self.done, self.pointer = root / self.name, 0, 0
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.pwrite(self.fd, head, 0)

    def write(self, lengths: np.ndarray, stream: np.ndarray) -> None:
        self.data.write(lengths, stream)
        sizes = lengths + 1  # each story and its EOD
        pointers = self.pointer + np.concatenate([[0], np.cumsum(sizes[:-1] * self.itemsize)])
        documents = np.arange(self.done + 1, self.done + 1 + len(sizes), dtype="<i8")
        os.pwrite(self.fd, sizes.astype("<i4").tobytes(), self.at["lengths"] + 4 * self.done)
        os.pwrite(self.fd, pointers.astype("<i8").tobytes(), self.at["pointers"] + 8 * self.done)
        os.pwrite(self.fd, documents.tobytes(), self.at["documents"] + 8 * (self.done + 1))
        self.pointer += int(sizes.sum()) * self.itemsize
        self.done += len(sizes)

    def abort(self) -> None:
        self.data.abort()
        os.close(self.fd)

    def close(self) -> dict:
        record = self.data.close()
        os.pwrite(self.fd, np.zeros(1, "<i8").tobytes(), self.at["documents"])  # the first document index, 0
        os.close(self.fd)
        if self.done != self.stories:  # the plan's rows were all read
            raise RuntimeError(f"{self.name}: {self.done} sequences written, {self.stories} in its header")
        digest = hashlib.sha256()
        with open(self.path, "rb") as f:  # 20 bytes a story: small beside the .bin
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        record[self.name] = {"sequences": self.stories, "bytes": self.at["end"], "sha256": digest.hexdigest()}
        return record


def writer(root: Path, prefix: str, *, tokens: int, stories: int, tokenizer, config) -> IndexedWriter:
    return IndexedWriter(root, prefix, stories=stories, dtype=dtype(tokenizer.vocab_size))


def describe(tokenizer, config) -> dict:
    kind = dtype(tokenizer.vocab_size)
    return {"dtype": f"{'uint16' if kind == '<u2' else 'int32'} little-endian .bin; .idx dtype code {CODES[kind]}"}


def extra_files(tokenizer, prepared: Path) -> dict:
    return {}
