"""`tinystories-train-tokenizer`: a vocabulary trained on the corpus itself, instead of GPT-Neo's reduced.

    tinystories-train-tokenizer --source ./TinyStories --output tok4096                      # byte-level BPE
    tinystories-train-tokenizer --source ./TinyStories --output tok4096 --model sentencepiece  # llama2.c's
    tinystories-prepare --source ./TinyStories --tokenizer tok4096 --vocab-size full --output ts4096

The stories are read through the sources contract (`load_stories`: the same stories in any layout give the
same tokenizer, byte for byte); the sample is a seeded choice of `--sample-size` train stories (the rows
`vocab.sample_rows` draws, as for the paper's vocabulary sample), fed in row order. Two trainers:

  * `bpe`: `tokenizers`' `BpeTrainer` on GPT-2's pre-tokenizer (ByteLevel, GPT-2's regex), its alphabet the
    256 bytes, so no story ever needs UNK; `<|endoftext|>` is id 0, the EOS and story separator. Written as a
    transformers tokenizer folder (`tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json`) that
    plain `AutoTokenizer.from_pretrained(DIR)` loads with the ids `tinystories-prepare` stores.
  * `sentencepiece`: exactly the settings of llama2.c's `train_vocab` (`LLAMA2C_SETTINGS`), on its text:
    each story `.strip()`-ed and written with a newline, so each of its lines is a sentence. Written as
    `DIR/tok{N}.model`, the name and format llama2.c's `Tokenizer`, `tokenizer.py --tokenizer-model` and
    `sample.py` take.

Determinism (measured by scripts/tokenizer_determinism.py, see the README): `tokenizers`' trainer gave one
file in separate processes (other hash seeds) and with one thread; sentencepiece's pieces and scores were the
same with 1 to 32 threads and from a file or an iterator, but its `.model` records `num_threads` and the input
file and prefix names: it is trained from an iterator (no file names recorded) with `SENTENCEPIECE_THREADS`
threads, pinned. `train_info.json` records what was trained from (options, sample, source, versions, file
hashes; the sampled stories by their sha256, `stories_sha256`, never the source's path or layout) and no time
or path of the machine, so the whole folder is byte-identical for the same stories and options.
"""
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import datasets

from ..config import (
    CommandParser,
    PrepareConfig,
    add_config_arguments,
    check_types,
    config_from_args,
    option,
    parse_sample_size,
)
from ..errors import TinyStoriesError, check_int, flag
from ..sources import load_stories
from ..supervision import api_errors, cli_errors, offers, writes
from ..utils.atomic import atomic_folder, check_output, hold_cache_lease, hold_writer_lock
from .counting import sample_rows
from .tokenizer import EOS_TOKEN, TinyStoriesTokenizer

MODELS = ("bpe", "sentencepiece")
TRAIN_INFO = "train_info.json"
BYTE_ALPHABET = 256
SENTENCEPIECE_THREADS = 16  # recorded in the .model: pinned so the file does not depend on the machine
# llama2.c's tinystories.py train_vocab, every setting but input (its tiny.txt) and model_prefix (data/tok{N}).
LLAMA2C_SETTINGS = {"model_type": "bpe", "self_test_sample_size": 0, "input_format": "text",
                    "character_coverage": 1.0, "split_digits": True, "allow_whitespace_only_pieces": True,
                    "byte_fallback": True, "unk_surface": r" \342\201\207 ", "normalization_rule_name": "identity"}
TEXTS_PER_BATCH = 1000


@dataclass
class TrainTokenizerConfig:
    """Options of `train_tokenizer()` and of `tinystories-train-tokenizer` (`--help` shows the defaults).

    Example:
        >>> TrainTokenizerConfig(source="demo", output="tok").vocab_size
        4096
    """

    source: str = option(PrepareConfig.source, "the stories: any source of tinystories-prepare (Hub id, folder, "
                          "file, demo)")
    output: str = option("tinystories_tokenizer", "folder to write")
    model: str = option("bpe", "bpe (tokenizers' byte-level BPE, GPT-2's pre-tokenizer) or sentencepiece "
                        "(llama2.c's train_vocab settings; needs the [sentencepiece] extra)")
    vocab_size: int = option(4096, "ids in the vocabulary, specials included (llama2.c's README example: 4096)")
    sample_size: int | None = option(100_000, "train stories sampled (seeded) to train on; 'all' trains on every "
                                     "story", parse=parse_sample_size)
    seed: int = option(PrepareConfig.seed, "seed of the sample and of the validation carve-out")
    text_column: str = option(PrepareConfig.text_column, "column of the source holding the story text")
    strip: bool = option(PrepareConfig.strip, "strip leading and trailing whitespace from every story (as prepare)")
    validation_fraction: float = option(PrepareConfig.validation_fraction, "share of train carved out as "
                                        "validation (and not trained on) when the source has none, as prepare does")
    num_proc: int = option(PrepareConfig.num_proc, "processes reading the source")
    overwrite: bool = option(False, "replace an existing output folder")
    cache_dir: str | None = option(None, "datasets cache folder; None means the Hugging Face datasets cache")

    def validate(self) -> None:
        """Raise a one-line `TinyStoriesError` for option values that cannot work (`check_types` first)."""
        check_types(self)
        if self.model not in MODELS:
            raise TinyStoriesError(f"{flag('model', self.model)} is not one of {', '.join(MODELS)}")
        low = BYTE_ALPHABET + 1 if self.model == "bpe" else BYTE_ALPHABET + 4
        if self.vocab_size < low:
            what = "the 256 byte tokens and <|endoftext|>" if self.model == "bpe" else \
                "the 256 byte pieces of byte_fallback, <unk>, <s>, </s> and at least one piece"
            raise TinyStoriesError(f"{flag('vocab_size', self.vocab_size)} is below the byte alphabet: it must hold "
                                   f"{what} (use {low} or more; llama2.c's example is 4096)")
        if self.sample_size is not None:
            check_int("sample_size", self.sample_size, low=1)
        check_int("num_proc", self.num_proc, low=1)
        PrepareConfig(validation_fraction=self.validation_fraction).validate()


@dataclass
class TrainResult:
    """What `train_tokenizer()` wrote: the folder, its files, the sample and the seconds it took."""

    output: Path
    files: dict
    info: dict
    seconds: float


def _versions() -> dict:
    found = {}
    for package in ("tinystories-hf", "tokenizers", "sentencepiece", "datasets"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def sample_texts(train: datasets.Dataset, rows) -> "iter":
    """The texts of `rows` (sorted indices, or None for all) of a split, in row order, in batches of strings."""
    if rows is not None:
        train = train.select(rows)
    for batch in train.with_format("arrow").iter(batch_size=TEXTS_PER_BATCH):
        yield batch.column("text").to_pylist()


_WHITESPACE_RUNS = re.compile(r"\s+")


def read_sample(batches) -> dict:
    """What the trainers need to know of the sampled stories before training, in one read:

    * `stories_sha256`: sha256 of the stories as JSON Lines of strings (`json.dumps(text) + "\\n"` each, UTF-8),
      what identifies the stories trained on in `train_info.json`, the same whatever layout or path they came from;
    * `most_ids`: per model, an upper bound on the ids training on them can reach, so a `--vocab-size` above it
      is one line before any training (10**9 made tokenizers abort on its allocation, 2**31 sentencepiece
      refuse it with INVALID_ARGUMENT). Both trainers keep every token inside one unit: a distinct
      whitespace-separated word, or a distinct whitespace run (GPT-2's pre-tokens and sentencepiece's pieces
      never cross from one word into another; a leading space is the word's one extra symbol). bpe: 257 (bytes
      and `<|endoftext|>`) + one merge per token a unit of n bytes can lose, n each (its n + 1 symbols with the
      space). sentencepiece: 259 (byte pieces, `<unk>`, `<s>`, `</s>`) + the substrings of at most 16 symbols
      (`max_sentencepiece_length`) of each unit with its `▁`: its BPE keeps pieces off the final merge path too.

    Example:
        >>> facts = read_sample([["Once. Once.", "The  end."]])
        >>> facts["most_ids"], facts["stories_sha256"] == hashlib.sha256(b'"Once. Once."\\n"The  end."\\n').hexdigest()
        ({'bpe': 272, 'sentencepiece': 314}, True)
    """
    digest, units = hashlib.sha256(), set()
    for batch in batches:
        digest.update("".join(json.dumps(text) + "\n" for text in batch).encode())
        for text in batch:
            units.update(text.split())
            units.update(_WHITESPACE_RUNS.findall(text))
    sizes = [len(unit.encode("utf-8", "surrogatepass")) for unit in units]  # bytes: at least its characters
    return {"stories_sha256": digest.hexdigest(),
            "most_ids": {"bpe": BYTE_ALPHABET + 1 + sum(sizes),
                         "sentencepiece": BYTE_ALPHABET + 3 + sum(_substrings(n + 1, SENTENCEPIECE_LONGEST)
                                                                   for n in sizes)}}


SENTENCEPIECE_LONGEST = 16  # sentencepiece's max_sentencepiece_length default, which llama2.c keeps


def _substrings(n: int, longest: int) -> int:
    """Substrings (by position) of 1 to `longest` symbols of a string of `n` symbols."""
    return sum(n - length + 1 for length in range(1, min(n, longest) + 1))


def check_fillable(vocab_size: int, model: str, most_ids: dict, total: int) -> None:
    """Raise the one line for a `vocab_size` above what `read_sample` found the sampled stories can fill."""
    if vocab_size > most_ids[model]:
        raise TinyStoriesError(f"the {total:,} sampled stories cannot fill {flag('vocab_size', vocab_size)}: they "
                               f"hold at most {most_ids[model]:,} ids (the byte alphabet, the specials and the "
                               f"tokens their distinct words allow); lower it, or sample more stories "
                               f"({flag('sample_size')})")


def _progress(batches, total: int, what: str):
    from datasets.utils.tqdm import tqdm

    with tqdm(total=total, desc=what, unit=" stories") as bar:
        for batch in batches:
            yield batch
            bar.update(len(batch))


def train_bpe(batches, *, vocab_size: int, total: int):
    """A byte-level BPE (`tokenizers.Tokenizer`) trained on the stories of `batches`: GPT-2's pre-tokenizer
    and decoder, `<|endoftext|>` id 0, then the 256 byte tokens, then the merges. Raises `TinyStoriesError`
    when the stories hold too few distinct pairs to reach `vocab_size`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # GPT-2's regex split
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS_TOKEN], show_progress=True,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(batches, trainer, length=total)
    if tokenizer.get_vocab_size(with_added_tokens=True) < vocab_size:
        found = tokenizer.get_vocab_size(with_added_tokens=True)
        raise TinyStoriesError(f"the {total:,} sampled stories hold too few distinct token pairs for "
                               f"{flag('vocab_size', vocab_size)}: training stopped at {found} ids; lower it to at "
                               f"most {found} or sample more stories ({flag('sample_size')})")
    return tokenizer


def llama2c_lines(batches):
    """llama2.c's `train_vocab` text, line by line: each story `.strip()`-ed, then a newline."""
    for batch in batches:
        for text in batch:
            yield from (text.strip() + "\n").split("\n")[:-1]


# What sentencepiece's C++ side (absl logging) prints on every training run that is no concern of the user's:
# absl's note that logging was not initialised, and the deprecation of llama2.c's `self_test_sample_size`
# (sentencepiece 0.2.x ignores it: the .model is byte-identical without it; it stays in LLAMA2C_SETTINGS, which
# are llama2.c's). Every other line, an error above all, is passed on as it comes.
SENTENCEPIECE_NOISE = re.compile(
    r"(?:WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|W\d{4} [\d:.]+ +\d+ spec_parser\.h:\d+\] --self_test_sample_size is deprecated and ignored\.)\r?\n")


@contextlib.contextmanager
def native_noise_filtered(noise=SENTENCEPIECE_NOISE):
    """Within the block, the lines written to file descriptor 2 (sentencepiece's absl logging) that `noise`
    matches, newline included, are dropped and the rest goes on to stderr as it comes, a line at a time (a
    progress bar's `\r` updates before such a line stay). Python's `sys.stderr` writes to stderr directly.
    Linux and macOS (file descriptors, a pipe and a thread).

    Example:
        >>> with native_noise_filtered():  # doctest: +SKIP
        ...     spm.SentencePieceTrainer.train(...)
    """
    sys.stderr.flush()
    saved = os.dup(2)
    read, write = os.pipe()

    def forward():
        with os.fdopen(read, "rb") as pipe:
            for line in pipe:  # ends when the last write end (fd 2 in the block) is closed
                kept = noise.sub("", line.decode("utf-8", "surrogateescape"))
                if kept:
                    os.write(saved, kept.encode("utf-8", "surrogateescape"))

    thread = threading.Thread(target=forward, name="native-stderr", daemon=True)
    thread.start()
    python_stderr = sys.stderr
    sys.stderr = open(saved, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    os.dup2(write, 2)
    os.close(write)
    finished = False
    try:
        yield
        finished = True
    finally:
        sys.stderr.flush()
        sys.stderr = python_stderr
        os.dup2(saved, 2)  # the pipe's last write end closes: the thread reads to its end and stops
        thread.join(timeout=10)
        # Left by an interrupt, a trainer thread may still hold a progress bar writing to `saved`: closed, its
        # number could be reused by a file this run opens next, which the bar would then write into.
        if finished and not thread.is_alive():
            os.close(saved)


def train_sentencepiece(batches, *, vocab_size: int) -> bytes:
    """The serialized `.model` sentencepiece trains on llama2.c's text of `batches` with llama2.c's settings
    (`LLAMA2C_SETTINGS`). Raises `TinyStoriesError` for a vocabulary size the text cannot fill or hold."""
    from .sentencepiece_base import _sentencepiece

    spm, model = _sentencepiece(), io.BytesIO()

    def train(stop: threading.Event) -> None:
        def lines():
            for line in llama2c_lines(batches):
                if stop.is_set():  # the run was interrupted: make the trainer give up reading
                    # Close the sample's progress bar here and now: left to the garbage collector, its last draw
                    # could come after the run's interrupted line.
                    getattr(batches, "close", lambda: None)()
                    raise RuntimeError("interrupted")
                yield line

        spm.SentencePieceTrainer.train(sentence_iterator=lines(), model_writer=model, vocab_size=vocab_size,
                                       num_threads=SENTENCEPIECE_THREADS, minloglevel=1, **LLAMA2C_SETTINGS)

    try:
        with native_noise_filtered():
            in_worker_thread(train)
    except RuntimeError as e:
        text = str(e)
        high = re.search(r"set it to a value <= (\d+)", text)
        low = re.search(r"smaller than required_chars\. \d+ vs (\d+)", text)
        if high:
            raise TinyStoriesError(f"the sampled stories cannot fill {flag('vocab_size', vocab_size)} pieces "
                                   f"(sentencepiece: at most {high.group(1)}); lower it or sample more stories "
                                   f"({flag('sample_size')})") from None
        if low:
            raise TinyStoriesError(f"{flag('vocab_size', vocab_size)} cannot hold the {low.group(1)} characters, "
                                   "bytes and specials of the sampled stories (character_coverage 1.0, as "
                                   f"llama2.c); use {flag('vocab_size', low.group(1))} or more") from None
        raise TinyStoriesError(f"sentencepiece could not train on the sample ({text.splitlines()[0]:.200})") from None
    return model.getvalue()


STOP_GRACE_SECONDS = 5.0  # how long an interrupted run waits for the trainer to notice (it trains on alone)


def in_worker_thread(function):
    """`function(stop)` run in a daemon thread while this (the main) thread waits, so Ctrl-C and SIGTERM are
    handled here at once, by Python's handlers: sentencepiece's trainer calls the sample iterator from C++ and
    turned a KeyboardInterrupt raised inside it into `RuntimeError: INTERNAL` (exit 2 instead of 130 / 143), and
    while it trains no Python code of the main thread runs. On a signal, `stop` is set (the iterator then makes
    the trainer give up) and the signal's exception unwinds the run; a trainer still training is left to end
    with the process. Returns what `function` returns, raises what it raises."""
    result, stop = {}, threading.Event()

    def run():
        try:
            result["value"] = function(stop)
        except BaseException as e:  # noqa: BLE001 -- handed to the main thread, raised there
            result["error"] = e

    thread = threading.Thread(target=run, name="tinystories-hf-trainer", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.2)
    except BaseException:
        stop.set()  # the trainer gives up at its next story; while it reads, that is at once
        thread.join(STOP_GRACE_SECONDS)  # its progress bar closes before the run unwinds and prints its line
        raise
    if "error" in result:
        raise result["error"]
    return result.get("value")


def _bpe_files(tokenizer) -> dict:
    """The transformers tokenizer folder of a trained BPE: tokenizer.json and the configs naming its EOS."""
    vocabulary = TinyStoriesTokenizer.full(tokenizer, specials={"eos": tokenizer.token_to_id(EOS_TOKEN), "bos": None,
                                                                "unk": None})
    config = vocabulary.transformers_config()
    specials = {key: config[key] for key in ("eos_token", "bos_token", "pad_token") if key in config}
    return {"tokenizer.json": tokenizer.to_str(pretty=True).encode(),
            "tokenizer_config.json": (json.dumps(config, indent=2) + "\n").encode(),
            "special_tokens_map.json": (json.dumps(specials, indent=2) + "\n").encode()}


@api_errors
def train_tokenizer(config: TrainTokenizerConfig) -> TrainResult:
    """Train a tokenizer on a seeded sample of the source's train stories and write `config.output`
    atomically (a temporary folder moved into place, one writer at a time, as `prepare`); see
    `TrainTokenizerConfig` for every option. A failure raises a one-line `TinyStoriesError`, and the output is
    then the previous complete folder, or absent.

    Example:
        >>> result = train_tokenizer(TrainTokenizerConfig(source="demo", output="tok", vocab_size=500))  # doctest: +SKIP
        >>> sorted(result.files)  # doctest: +SKIP
        ['special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json', 'train_info.json']
    """
    offers(f.name for f in dataclasses.fields(config))
    config.validate()
    started = time.perf_counter()
    if config.model == "sentencepiece":
        from .sentencepiece_base import _sentencepiece

        _sentencepiece()  # the extra's one line before any work
    output = check_output(config.output, overwrite=config.overwrite, cache_dir=config.cache_dir, marker=TRAIN_INFO,
                          what="a tokenizer folder written by tinystories-train-tokenizer",
                          source_files=[config.source] if Path(config.source).exists() else [])
    hold_writer_lock(output)
    writes(config.cache_dir or datasets.config.HF_DATASETS_CACHE, f"pass another {flag('cache_dir')}")
    stories, source = load_stories(config.source, text_column=config.text_column,
                                   validation_fraction=config.validation_fraction, seed=config.seed,
                                   cache_dir=config.cache_dir, num_proc=config.num_proc, strip=config.strip)
    hold_cache_lease(*stories.values())
    train = stories["train"]
    rows = sample_rows(train.num_rows, config.sample_size, config.seed)
    total = train.num_rows if rows is None else len(rows)
    facts = read_sample(sample_texts(train, rows))
    check_fillable(config.vocab_size, config.model, facts["most_ids"], total)
    batches = _progress(sample_texts(train, rows), total, f"{config.model}: reading {total:,} train stories")
    if config.model == "bpe":
        files = _bpe_files(train_bpe(batches, vocab_size=config.vocab_size, total=total))
    else:
        files = {f"tok{config.vocab_size}.model": train_sentencepiece(batches, vocab_size=config.vocab_size)}
    # No path and nothing of the layout (source, kind, text column, file hash): the stories themselves
    # identify what was trained on, so the same stories in any layout give the same folder, byte for byte.
    options = {key: value for key, value in dataclasses.asdict(config).items()
               if key not in ("source", "text_column", "output", "overwrite", "cache_dir", "num_proc")}
    info = {"format": "tinystories-hf-train-tokenizer/2", "config": options,
            "sample": {"stories": total, "of": train.num_rows, "seed": config.seed, "rows": "all" if rows is None
                       else "numpy.random.default_rng(seed).choice(of, size=stories, replace=False), sorted",
                       "stories_sha256": facts["stories_sha256"]},
            "source": {"validation": source.validation},
            "settings": {**LLAMA2C_SETTINGS, "num_threads": SENTENCEPIECE_THREADS} if config.model == "sentencepiece"
            else {"trainer": "tokenizers.trainers.BpeTrainer", "pre_tokenizer": "ByteLevel(add_prefix_space=False)",
                  "special_tokens": [EOS_TOKEN], "initial_alphabet": "ByteLevel.alphabet()"},
            "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
            "versions": _versions()}
    files[TRAIN_INFO] = (json.dumps(info, indent=2) + "\n").encode()
    with atomic_folder(output, overwrite=config.overwrite) as partial:
        partial.mkdir(parents=True)
        for name, data in files.items():
            (partial / name).write_bytes(data)
    return TrainResult(output=output, files={name: len(data) for name, data in files.items()}, info=info,
                       seconds=time.perf_counter() - started)


@cli_errors
def main(argv=None) -> int:
    parser = CommandParser(prog="tinystories-train-tokenizer", description="Train a tokenizer (byte-level "
                           "BPE, or SentencePiece with llama2.c's settings) on a seeded sample of the "
                           "train stories, for tinystories-prepare --tokenizer DIR --vocab-size full.")
    add_config_arguments(parser, TrainTokenizerConfig)
    config = config_from_args(parser.parse_args(argv), TrainTokenizerConfig)
    result = train_tokenizer(config)
    sample = result.info["sample"]
    print(f"trained a {config.vocab_size:,}-id {config.model} tokenizer on {sample['stories']:,} of "
          f"{sample['of']:,} train stories in {result.seconds:.1f} s -> {config.output}")
    for name, size in sorted(result.files.items()):
        print(f"{size:>12,}  {name}")
    use = f"{config.output}/tok{config.vocab_size}.model" if config.model == "sentencepiece" else config.output
    print(f"use it: tinystories-prepare --tokenizer {use} --vocab-size full")
    return 0


if __name__ == "__main__":
    sys.exit(main())
