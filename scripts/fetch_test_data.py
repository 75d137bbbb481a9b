"""Fetch the tests' real TinyStories sample (5,520 stories) from the public files it was built from.

    python scripts/fetch_test_data.py ~/tinystories-test-data       # needs network (raw.githubusercontent.com)
    TINYSTORIES_TEST_DATA=~/tinystories-test-data .venv/bin/python -m pytest -q

The tests read `stories.jsonl` and `stories-eot.txt` from `../shared/data/tinystories-sample/` beside the
checkout, or from the folder `TINYSTORIES_TEST_DATA` names (tests/conftest.py). A clone made elsewhere has no
`../shared/`: this script builds the same two files from the four public files the sample was gathered from
(TinyStories by Eldan & Li 2023, CDLA-Sharing-1.0; each file pinned to a commit and checked by its git blob
hash): the first 2 MiB of the V1 `TinyStories-train.txt` (its cut-off last story dropped), the first 201 V1
validation stories, the first 5 V2 train stories and 3,000 V1 train stories (the 2 already seen dropped), each
story `.strip()`-ed, in that order. It then checks each output's sha256 against the sample's; the tests assert
figures measured on exactly these stories, so a mismatch is an error (`--no-check` writes the files anyway).
`--from DIR` builds from local copies of the four files (named as in SOURCES, by file name) instead.
"""
import argparse
import hashlib
import json
import sys
import urllib.request
from pathlib import Path

EOT = "<|endoftext|>"
# (repository, commit, path, git blob sha1 prefix, format): in the sample's order.
SOURCES = [
    ("gusjengis/toy-RNN", "e4c7ff8bba4ff7989e69a3a816ebe4b14813b41e", "data/tinystories_sample.txt",
     "23ed82344f0e", "eot-cut"),
    ("ztype764/tinyModelZ", "4805133f1d071d77206424b5f41cd6b82b56aad4", "TinyStories-valid-reduced.txt",
     "c2829cafef26", "eot"),
    ("wdb2021/CS336", "f9af1b5decf6b6d436ec3398c2d4d7de7c8b7328", "tests/fixtures/tinystories_sample.txt",
     "9d5302439e44", "eot"),
    ("maxme1/tiny-stories", "037e886f4ee35dca2c469b0da3638ebf2255e4cb", "frontend/src/assets/tiny-stories.json",
     "bf1493a25b34", "json-texts"),
]
SHA256 = {"stories.jsonl": "bbf371dbf4b67db0319b73a02010caa227fac63dff6bf2481c046f1440cba303",
          "stories-eot.txt": "465eeef6affa4b77432ae021cd5f1cbcd91d4937b960efe8a8b17f3a666a65b2"}


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def read_source(data: bytes, kind: str) -> list:
    """The stories of one source file, `.strip()`-ed, empty ones left out. `eot-cut`: the file is the first
    bytes of a larger one, so the text after its last `<|endoftext|>` is a cut-off story, dropped."""
    if kind == "json-texts":
        texts = json.loads(data.decode("utf-8"))["texts"]
    else:
        texts = data.decode("utf-8").split(EOT)
        if kind == "eot-cut":
            texts = texts[:-1]
    return [t.strip() for t in texts if t.strip()]


def build(files: list) -> list:
    """The sample's stories from the four files' bytes (in `SOURCES` order): each source's stories in its order,
    a story already taken from an earlier source (identical after strip) left out."""
    stories, seen = [], set()
    for data, (*_, kind) in zip(files, SOURCES):
        for story in read_source(data, kind):
            if story not in seen:
                seen.add(story)
                stories.append(story)
    return stories


def outputs(stories: list) -> dict:
    """The bytes of `stories.jsonl` and `stories-eot.txt` (the TinyStoriesV2 raw layout: `story\\n<|endoftext|>\\n`)."""
    return {"stories.jsonl": "".join(json.dumps({"text": s}, ensure_ascii=False) + "\n" for s in stories).encode(),
            "stories-eot.txt": "".join(f"{s}\n{EOT}\n" for s in stories).encode()}


def fetch(repo: str, commit: str, path: str) -> bytes:
    url = f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"
    with urllib.request.urlopen(url, timeout=60) as response:  # a fixed https URL
        return response.read()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="folder to write stories.jsonl and stories-eot.txt to")
    parser.add_argument("--from", dest="local", type=Path, help="a folder with local copies of the four files")
    parser.add_argument("--no-check", action="store_true", help="write the files even if their sha256 differs")
    args = parser.parse_args(argv)
    files = []
    for repo, commit, path, blob, _ in SOURCES:
        try:
            data = (args.local / Path(path).name).read_bytes() if args.local else fetch(repo, commit, path)
        except OSError as e:
            print(f"error: could not read {path} of {repo}@{commit[:12]}: {e}", file=sys.stderr)
            return 2
        if not git_blob_sha1(data).startswith(blob):
            print(f"error: {path} of {repo} is not the pinned file (git blob {git_blob_sha1(data)[:12]}, expected "
                  f"{blob})", file=sys.stderr)
            return 2
        files.append(data)
    stories = build(files)
    written = outputs(stories)
    wrong = [name for name, data in written.items() if hashlib.sha256(data).hexdigest() != SHA256[name]]
    if wrong and not args.no_check:
        print(f"error: the rebuilt {', '.join(wrong)} differ from the sample the tests measure ({len(stories):,} "
              "stories); pass --no-check to write them anyway", file=sys.stderr)
        return 2
    args.output.mkdir(parents=True, exist_ok=True)
    for name, data in written.items():
        (args.output / name).write_bytes(data)
    print(f"wrote {len(stories):,} stories to {args.output}; run the tests with TINYSTORIES_TEST_DATA={args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
