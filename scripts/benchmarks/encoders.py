"""`benchmark.py --encoders`: the exact-ids and speed evaluation of GPT-2 BPE encoders (the evidence for the
backend `--backend auto` picks), and `--wheels`: their wheels, license and release history from PyPI.

Every candidate is built offline from the bundled GPT-2 files (`gpt2_bpe_files()`), as prepare would build
it, and checked against tiktoken's `encode_ordinary` (HF tokenizers agrees with it: the test suite checks that) on:
  * every story of the real sample (../shared/data/tinystories-sample),
  * GPT-2's pre-tokenizer corners: contractions, whitespace runs, digits, emoji, NUL, a literal
    `<|endoftext|>` (always ordinary text in a story),
  * seeded random unicode strings (`--fuzz` of them).
Speed: one process, the sample's stories in batches of ENCODE_BATCH_SIZE, the library's fastest batch call
that gives ids in one buffer where it has one: the first pass, and the best of 3 passes after it (wall time;
HF tokenizers' batch call runs on several threads, the others on the calling one).

Candidates are optional imports: install them in a scratch venv (`pip install splintr-rs fastokens tokie
riptoken kitoken gigatoken`) and run `python scripts/benchmark.py --encoders`.
"""
import base64
import functools
import json
import random
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from tinystories_hf.tokenize.passes import ENCODE_BATCH_SIZE
from tinystories_hf.vocabulary.gpt2 import gpt2_ranks, gpt_neo_tokenizer

REPO = Path(__file__).resolve().parents[2]
# GPT-2's pre-tokenizer regex as OpenAI's encoder.py spells it (tiktoken's r50k_pat_str is the same split
# written with possessive quantifiers, which some engines do not take).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
SAMPLE = REPO.parent / "shared" / "data" / "tinystories-sample" / "stories.jsonl"

# GPT-2's pre-tokenizer corners: where a re-implementation of its regex or of byte-level BPE can go wrong.
CORNERS = [
    "", " ", "  ", "   \n\n  \t", "\n", "\r\n\r\n", "a  b   c    d", "trailing   ", "   leading", "\t\ttabs\t",
    "It's, I'll, we've, they're, don't, he'd, I'm", "IT'S I'LL 'tis 's 'S ''s ' s", "rock'n'roll o'clock",
    "123 4567 89.0 1,000,000 3.14159 0x1F -42", "２３４ ¹²³ ٣٤٥ ⅷ", "2023-10-01T12:00:00Z",
    "🙂 👨‍👩‍👧 🇺🇸 👍🏽 ❤️", "a\x00b \x00 \x00\x00", "\x01\x02\x1b[0m\x7f",
    "Once upon a time<|endoftext|>There was", "<|endoftext|>", " <|endoftext|> ", "<|endoftext|><|endoftext|>",
    "<|endoftext", "naïve café – “quoted” ‘x’ — 日本語 한국어 русский العربية", "e\u0301 a\u0308 \u200b\u200d",
    "\u00a0\u2003\u3000 spaces", "x" * 3000, " " * 1000 + "y", "\n" * 500, "ab" * 2000, "😀" * 300,
]


def corners() -> list:
    return list(CORNERS)


def fuzz(count: int, seed: int = 0) -> list:
    """Seeded random strings mixing ASCII, whitespace runs, digits, punctuation and random code points of
    every plane (no surrogates: stories come from UTF-8 files)."""
    rng = random.Random(seed)
    pools = ["abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", " \t\n\r\u00a0\u3000", "0123456789",
             "'\".,;:!?-()[]{}<>|/\\@#$%^&*_+=~`", "'s 're 've 'll 't 'd 'm"]
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 40)):
            kind = rng.random()
            if kind < 0.6:
                pool = rng.choice(pools)
                parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 8))))
            else:
                top = rng.choice([0x7F, 0x800, 0x10000, 0x110000])
                points = [rng.randrange(0, top) for _ in range(rng.randint(1, 4))]
                parts.append("".join(chr(p) for p in points if not 0xD800 <= p < 0xE000))
        texts.append("".join(parts))
    return texts


def sample_stories() -> list:
    return [json.loads(line)["text"] for line in SAMPLE.open(encoding="utf-8")]


# -- candidates: each built offline from the bundled files; flat(texts) -> (lengths, uint32 ids) -------------
def _split(ids: bytes, offsets: bytes, id_dtype, offset_dtype) -> tuple:
    values, ends = np.frombuffer(ids, dtype=id_dtype), np.frombuffer(offsets, dtype=offset_dtype)
    return np.diff(ends).astype(np.int64), values


def _lists(rows) -> tuple:
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    return lengths, np.fromiter((i for row in rows for i in row), dtype=np.uint32, count=int(lengths.sum()))


@functools.cache
def _files() -> dict:
    """The GPT-2 BPE as the files candidates load: a tiktoken ranks file and a tokenizer.json without the
    `<|endoftext|>` added token (story text is ordinary text; with it, tokie and kitoken match the literal)."""
    folder = Path(tempfile.mkdtemp(prefix="gpt2-encoders-"))
    ranks = gpt2_ranks()
    (folder / "gpt2.tiktoken").write_bytes(b"".join(base64.b64encode(t) + b" %d\n" % r for t, r in ranks.items()))
    spec = json.loads(gpt_neo_tokenizer().to_str())
    spec["added_tokens"] = []
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    return {"ranks": folder / "gpt2.tiktoken", "json": folder / "tokenizer.json"}


def _tiktoken():
    from tinystories_hf.vocabulary.encoders import TiktokenEncoder

    encoder = TiktokenEncoder()
    return lambda texts: encoder.encode_flat(texts, np.uint32)


def _hf():
    from tinystories_hf.vocabulary.encoders import HFEncoder

    encoder = HFEncoder(gpt_neo_tokenizer())
    return lambda texts: encoder.encode_flat(texts, np.uint32)


def _splintr():
    import splintr

    tokenizer = splintr.Tokenizer.from_bytes(_files()["ranks"].read_bytes(), GPT2_PATTERN, {})
    return lambda texts: _split(*tokenizer.encode_batch_flat(texts), np.uint32, np.uint64)


def _fastokens():
    from tinystories_hf.vocabulary.encoders import FastokensEncoder

    encoder = FastokensEncoder()
    return lambda texts: encoder.encode_flat(texts, np.uint32)


def _tokie():
    import tokie

    tokenizer = tokie.Tokenizer.from_json(str(_files()["json"]))
    return lambda texts: _lists([e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)])


def _riptoken():
    from riptoken import CoreBPE

    core = CoreBPE(gpt2_ranks(), {}, GPT2_PATTERN)
    return lambda texts: _lists(core.encode_ordinary_batch(texts))


def _kitoken():
    import kitoken

    tokenizer = kitoken.Kitoken.from_tokenizers(_files()["json"].read_bytes())
    return lambda texts: _lists(tokenizer.encode_all(texts, False))


def _gigatoken():
    import gigatoken

    tokenizer = gigatoken.Tokenizer.from_tiktoken(str(_files()["ranks"]), pretokenizer="gpt2", special_tokens={})

    def flat(texts):
        ids = tokenizer.encode_batch(texts, parallel=False)
        import awkward

        layout = awkward.to_layout(ids)
        return np.diff(np.asarray(layout.offsets)).astype(np.int64), np.asarray(layout.content.data)
    return flat


CANDIDATES = {  # package on PyPI -> (import check, builder, the call measured)
    "tiktoken": (_tiktoken, "encode_to_numpy per story (prepare's tiktoken backend)"),
    "tokenizers": (_hf, "encode_batch_fast (prepare's hf backend; several threads)"),
    "fastokens": (_fastokens, "encode_batch_flat (prepare's fastokens backend)"),
    "splintr-rs": (_splintr, "encode_batch_flat"),
    "tokie": (_tokie, "encode_batch"),
    "riptoken": (_riptoken, "CoreBPE.encode_ordinary_batch"),
    "kitoken": (_kitoken, "encode_all"),
    "gigatoken": (_gigatoken, "encode_batch(parallel=False)"),
}
# Looked at and left out, with the reason (checked with the versions in the docs table).
NOT_APPLICABLE = {
    "wordchipper": "builds GPT-2 only by name (from_pretrained downloads it; offline it silently gives a "
                   "256-token byte tokenizer), not from the bundled files",
    "bpe-openai": "bundles cl100k/o200k only; no GPT-2 (r50k) encoding and no way to load one",
    "toktok-rs": "counts tokens only (ids are not returned); no GPT-2 encoding",
}


def _mismatch(flat, texts) -> str | None:
    """None if `flat` gives tiktoken's ids for every text, else the first differing text's index."""
    reference = _tiktoken()
    for start in range(0, len(texts), ENCODE_BATCH_SIZE):
        batch = texts[start:start + ENCODE_BATCH_SIZE]
        try:
            got, want = flat(batch), reference(batch)
        except Exception as e:  # noqa: BLE001 -- a candidate's own error is a finding, not a crash
            return f"raised {type(e).__name__}: {str(e)[:60]}"
        if not (np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])):
            ends_got, ends_want = np.cumsum(got[0]), np.cumsum(want[0])
            for i in range(len(batch)):
                a = got[1][ends_got[i] - got[0][i]:ends_got[i]]
                b = want[1][ends_want[i] - want[0][i]:ends_want[i]]
                if not np.array_equal(a, b):
                    return f"text {start + i} ({batch[i][:30]!r})"
    return None


def _speed(flat, texts) -> tuple:
    """(M tokens/s of the first pass, of the best of 3 passes after it): several libraries keep per-word
    caches, which the first pass fills."""
    batches = [texts[i:i + ENCODE_BATCH_SIZE] for i in range(0, len(texts), ENCODE_BATCH_SIZE)]
    cold = time.perf_counter()
    tokens = sum(int(flat(b)[0].sum()) for b in batches)
    cold = time.perf_counter() - cold
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for batch in batches:
            flat(batch)
        best = min(best, time.perf_counter() - start)
    return tokens / cold / 1e6, tokens / best / 1e6


def evaluate(fuzz_count: int = 20_000) -> None:
    from importlib.metadata import PackageNotFoundError, version

    stories, corner_texts, fuzz_texts = sample_stories(), corners(), fuzz(fuzz_count)
    print(f"exact ids against tiktoken.encode_ordinary: {len(stories):,} real stories, {len(corner_texts)} corner "
          f"cases, {len(fuzz_texts):,} random unicode strings; speed: one process, the real stories in batches of "
          f"{ENCODE_BATCH_SIZE:,}\n")
    print("| package | version | call | real stories | corners | fuzz | M tok/s first pass | M tok/s warm | "
          "x tiktoken (warm) |\n|---|---|---|---|---|---|---:|---:|---:|")
    baseline = None
    for package, (build, call) in CANDIDATES.items():
        try:
            flat, found = build(), version(package.strip())
        except (ImportError, PackageNotFoundError):
            print(f"| {package} | not installed | | | | | | | |")
            continue
        checks = [_mismatch(flat, texts) or "all equal" for texts in (stories, corner_texts, fuzz_texts)]
        cold, warm = _speed(flat, stories)
        baseline = baseline or warm
        print(f"| {package} | {found} | `{call}` | {checks[0]} | {checks[1]} | {checks[2]} | {cold:.1f} | "
              f"{warm:.1f} | {warm / baseline:.1f} |", flush=True)
    for package, reason in NOT_APPLICABLE.items():
        print(f"| {package} | | not applicable: {reason} | | | | | | |")


# -- --wheels: what PyPI serves (its JSON API), for the platforms and the Pythons setup.cfg supports ---------
PLATFORMS = {"Linux x86_64": ("manylinux", "x86_64"), "Linux aarch64": ("manylinux", "aarch64"),
             "macOS arm64": ("macosx", "arm64"), "macOS x86_64": ("macosx", "x86_64"), "Windows x64": ("win", "amd64")}
PYTHONS = (10, 11, 12, 13, 14)  # 3.10 (setup.cfg's python_requires) to 3.14


def wheel_pythons(filename: str) -> set:
    """The 3.x minor versions a wheel installs on: cp3X-abi3 covers 3.X and later, cp3X-cp3X only 3.X."""
    python, abi = filename[:-4].split("-")[-3:-1]
    if python.startswith("py3"):
        return set(PYTHONS)
    found = set()
    for tag in python.split("."):
        if tag.startswith("cp3"):
            minor = int(tag[3:])
            found |= {m for m in PYTHONS if m >= minor} if abi == "abi3" else {minor} & set(PYTHONS)
    return found


def wheels(packages) -> None:
    """Print, per package, the latest release, its release history, license and wheels per platform."""
    print("| package | latest | released | releases since | license | wheels of the latest release (Python 3.x) |\n"
          "|---|---|---|---|---|---|")
    for package in packages:
        with urllib.request.urlopen(f"https://pypi.org/pypi/{package}/json", timeout=30) as response:
            meta = json.load(response)
        info, files = meta["info"], meta["urls"]
        uploads = sorted(f["upload_time"][:10] for release in meta["releases"].values() for f in release)
        releases = sum(1 for release in meta["releases"].values() if release)
        names = [f["filename"] for f in files if f["filename"].endswith(".whl")]
        cells = []
        for label, (system, machine) in PLATFORMS.items():
            minors = set().union(*[wheel_pythons(n) for n in names if system in n and machine in n] or [set()])
            minors |= set().union(*[wheel_pythons(n) for n in names if n.endswith("-any.whl")] or [set()])
            cells.append(f"{label} {_span(minors)}")
        license_ = info.get("license_expression") or (info.get("license") or "").strip().split("\n")[0][:30] or \
            ", ".join(c.split(" :: ")[-1] for c in info.get("classifiers", []) if c.startswith("License")) or "?"
        print(f"| {package} | {info['version']} | {min((f['upload_time'][:10] for f in files), default='?')} | "
              f"{releases} since {uploads[0] if uploads else '?'} | {license_} | {'; '.join(cells)} |", flush=True)


def _span(minors: set) -> str:
    if not minors:
        return "none"
    low, high = min(minors), max(minors)
    missing = set(range(low, high + 1)) - minors
    return f"3.{low}-3.{high}" + (f" (not {', '.join(f'3.{m}' for m in sorted(missing))})" if missing else "")
