"""karpathy/nanoGPT's data layout: `train.bin`, `val.bin` (and `meta.pkl` where nanoGPT needs it) in `data/<dataset>/`.

As its `data/openwebtext/prepare.py` writes them: each document's ids followed by the EOT id
(`ids = enc.encode_ordinary(text); ids.append(enc.eot_token)`), documents concatenated in order, raw `np.uint16`
with no header; `train.py` memory-maps them and draws random windows of `block_size + 1` tokens. Every split
of the folder is written, validation as `val.bin` (train.py's name), any other as `{split}.bin`; two splits
that would share a file (`validation` and `val`) are one line.

`meta.pkl` is the one pickle the project writes, because nanoGPT reads no other format: `train.py` takes
`vocab_size` from it (else it builds a 50,304-row model), and `sample.py` its `stoi`/`itos` (encode =
`[stoi[c] for c in s]`, decode = `''.join(itos[i] for i in l)`). It holds only a dict of ints and strings
(`itos[i]`: the text of token i; `stoi`: text -> the lowest id with that text); nothing of the project reads it.
`sample.py` encodes its start text character by character (its character-level convention): keep its default
start "\\n", or a start whose characters are tokens of the vocabulary. For GPT-2's own full vocabulary no
`meta.pkl` is written: without one, `train.py` builds GPT-2's 50,304-row model and `sample.py` encodes and
decodes with tiktoken's GPT-2, exactly these ids (with a `meta.pkl` it would encode "Once upon a time" as 16
single characters).

The export owns `train.bin`, `val.bin`, `{split}.bin`, `meta.pkl` and `export_info.json` in the folder, not the
folder: nanoGPT's `data/<dataset>/` may hold a `prepare.py` or notes, which stay (`placement`).
"""
import pickle
from pathlib import Path

from ..errors import TinyStoriesError
from ..vocabulary.gpt2 import is_gpt2_bpe
from .frames import StreamWriter

EOT_FILES = {"train": "train.bin", "validation": "val.bin"}
UINT16_IDS = 65_536


def check_vocabulary(tokenizer, config) -> None:
    if tokenizer.vocab_size > UINT16_IDS:
        raise TinyStoriesError(f"{config.prepared}: its vocabulary of {tokenizer.vocab_size:,} ids does not fit the "
                               f"uint16 ids nanogpt reads (at most {UINT16_IDS:,}); prepare it with a smaller "
                               "vocabulary")


def plan(splits, tokenizer, config) -> list:
    """`[(file, split, first row, end row)]`: one file per split; train and validation must hold stories."""
    for split in ("train", "validation"):
        if split not in splits:
            raise TinyStoriesError(f"{config.prepared}: no {split!r} split; nanoGPT's train.py reads "
                                   f"{EOT_FILES[split]}, so the folder needs one (re-create it with tinystories-prepare)")
        if splits[split].num_rows == 0:
            raise TinyStoriesError(f"{config.prepared}: split {split!r} kept no story; nanoGPT's train.py draws "
                                   f"batches from {EOT_FILES[split]} (lower --min-length when preparing)")
    files = {}
    for split in splits:
        name = EOT_FILES.get(split, f"{split}.bin")
        other = next((s for s, f in files.items() if f.casefold() == name.casefold()), None)
        if other is not None:
            raise TinyStoriesError(f"{config.prepared}: splits {other!r} and {split!r} would both be written to {name} "
                                   "(nanoGPT names validation val.bin); rename or drop one of them, or export with "
                                   "another --format")
        files[split] = name
    return [(files[split], split, 0, s.num_rows) for split, s in splits.items()]


def layout(tokenizer, config) -> dict:
    """The entries are the folder's top-level files; `export_info.json` among them records them."""
    return {"anchor": None, "record": "export_info.json"}


def frame(tokenizer) -> tuple:
    """`(separator id, before)`: the EOS (the folder's separator) after each story."""
    return tokenizer.separator_id, False


def files(name: str) -> list:
    return [name]


def writer(root: Path, name: str, *, tokens: int, stories: int, tokenizer, config) -> StreamWriter:
    return StreamWriter(root / name, name, dtype="<u2")


def describe(tokenizer, config) -> dict:
    return {"dtype": "uint16 little-endian, no header"}


def token_texts(tokenizer) -> list:
    """The text of each id, for `itos`: a byte-level token decoded alone (`" Once"`; bytes of a character cut
    in two by the BPE decode as U+FFFD), a SentencePiece piece with its `▁` as a space and its `<0x0A>` byte
    pieces as the byte's character (U+FFFD above 0x7F), EOS/UNK and other specials by their token."""
    special, base = set(tokenizer.special_token_ids), tokenizer.base_tokenizer
    base_ids = range(tokenizer.vocab_size) if tokenizer.base_ids is None else tokenizer.base_ids.tolist()
    if getattr(base, "kind", None) == "sentencepiece":
        texts = []
        for i, b in enumerate(base_ids):
            piece = tokenizer.id_token(i)
            if i not in special and len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
                byte = int(piece[3:5], 16)
                piece = chr(byte) if byte < 0x80 else "\ufffd"
            texts.append(piece if i in special else piece.replace("\u2581", " "))
        return texts
    decoded = base.decode_batch([[max(b, 0)] for b in base_ids], skip_special_tokens=False)
    return [tokenizer.id_token(i) if i in special else text for i, text in enumerate(decoded)]


def meta(tokenizer) -> dict:
    """nanoGPT's meta.pkl content: `{"vocab_size": int, "itos": {id: text}, "stoi": {text: id}}`."""
    itos = dict(enumerate(token_texts(tokenizer)))
    stoi = {}
    for i, text in itos.items():
        stoi.setdefault(text, i)
    return {"vocab_size": tokenizer.vocab_size, "itos": itos, "stoi": stoi}


def is_gpt2(tokenizer) -> bool:
    """GPT-2's own 50,257 ids (`--vocab-size full` of the GPT-2/GPT-Neo BPE): what nanoGPT assumes without
    a `meta.pkl`."""
    base = tokenizer.base_tokenizer
    return tokenizer.kind == "full" and tokenizer.vocab_size == 50_257 and tokenizer.eos_id == 50_256 and \
        getattr(base, "kind", None) != "sentencepiece" and is_gpt2_bpe(base)


def extra_files(tokenizer, prepared: Path) -> dict:
    """`meta.pkl`, except for GPT-2's own vocabulary (nanoGPT's default: no meta.pkl, tiktoken's GPT-2)."""
    if is_gpt2(tokenizer):
        return {}
    return {"meta.pkl": pickle.dumps(meta(tokenizer), protocol=4)}
