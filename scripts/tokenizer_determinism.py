"""Does a trained tokenizer depend on the run, the process or the thread count? The figures of the README's
"Your own vocabulary" (determinism), measured by training again and comparing hashes.

    python scripts/tokenizer_determinism.py                       # the real sample in ../shared/data
    python scripts/tokenizer_determinism.py --source DIR --runs 3

bpe: `tinystories-train-tokenizer --model bpe` in `--runs` separate processes (each with its own hash seed),
plus one with RAYON_NUM_THREADS=1 and one with TOKENIZERS_PARALLELISM=false; the sha256 of each tokenizer.json.
sentencepiece: the pieces and scores of a model trained by sentencepiece directly with llama2.c's settings on
llama2.c's text (a tiny.txt file) with each of `--threads`, and from an iterator (what the command does); then
the command's own .model in two processes.
"""
import argparse
import hashlib
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinystories-sample" / "stories.jsonl"


def _train(source: str, out: Path, model: str, env: dict | None = None) -> str:
    subprocess.run([sys.executable, "-m", "tinystories_hf.vocabulary.train_tokenizer", "--source", source, "--model", model,
                    "--output", str(out), "--num-proc", "1", "--overwrite"], check=True, env={**os.environ, **(env or {})},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    name = "tokenizer.json" if model == "bpe" else "tok4096.model"
    return hashlib.sha256((out / name).read_bytes()).hexdigest()[:16]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default=str(SAMPLE))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", default="1,2,8,16,32", help="sentencepiece num_threads to compare")
    args = parser.parse_args(argv)
    import sentencepiece as spm

    from tinystories_hf import load_stories
    from tinystories_hf.vocabulary.counting import sample_rows
    from tinystories_hf.vocabulary.train_tokenizer import LLAMA2C_SETTINGS, llama2c_lines, sample_texts

    with tempfile.TemporaryDirectory(prefix="tinystories-determinism-") as work:
        work = Path(work)
        runs = {f"process {i + 1}": _train(args.source, work / "bpe", "bpe") for i in range(args.runs)}
        runs["RAYON_NUM_THREADS=1"] = _train(args.source, work / "bpe", "bpe", {"RAYON_NUM_THREADS": "1"})
        runs["TOKENIZERS_PARALLELISM=false"] = _train(args.source, work / "bpe", "bpe",
                                                     {"TOKENIZERS_PARALLELISM": "false"})
        print(f"bpe tokenizer.json sha256: {runs}; {len(set(runs.values()))} distinct")

        train = load_stories(args.source)[0]["train"]
        batches = list(sample_texts(train, sample_rows(train.num_rows, 100_000, 1337)))
        tiny = work / "tiny.txt"
        tiny.write_text("".join(line + "\n" for line in llama2c_lines(batches)), encoding="utf-8")
        pieces = {}
        for threads in map(int, args.threads.split(",")):
            spm.SentencePieceTrainer.train(input=str(tiny), model_prefix=str(work / f"t{threads}"), vocab_size=4096,
                                           num_threads=threads, minloglevel=2, **LLAMA2C_SETTINGS)
            model = spm.SentencePieceProcessor(model_file=str(work / f"t{threads}.model"))
            pieces[f"file, {threads} threads"] = _pieces(model)
        writer = io.BytesIO()
        spm.SentencePieceTrainer.train(sentence_iterator=llama2c_lines(batches), model_writer=writer, vocab_size=4096,
                                       num_threads=2, minloglevel=2, **LLAMA2C_SETTINGS)
        pieces["iterator, 2 threads"] = _pieces(spm.SentencePieceProcessor(model_proto=writer.getvalue()))
        print(f"sentencepiece pieces+scores sha256: {pieces}; {len(set(pieces.values()))} distinct")
        files = {f"process {i + 1}": _train(args.source, work / "spm", "sentencepiece") for i in range(2)}
        print(f"sentencepiece tok4096.model sha256 (the command): {files}; {len(set(files.values()))} distinct")
    return 0


def _pieces(model) -> str:
    pieces = [(model.id_to_piece(i), model.get_score(i)) for i in range(model.get_piece_size())]
    return hashlib.sha256(repr(pieces).encode()).hexdigest()[:16]


if __name__ == "__main__":
    sys.exit(main())
