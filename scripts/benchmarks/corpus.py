"""The benchmark corpus: TinyStories-shaped stories from ../shared/tools/make_corpus.py, Hub parquet layout."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAKE_CORPUS = REPO.parent / "shared" / "tools" / "make_corpus.py"
SHARD_ROWS = 100_000


def validation_size(train: int) -> int:
    """Validation stories beside `train` in TinyStories' own ratio (21,990 for 2,119,719)."""
    return max(1, round(train * 21_990 / 2_119_719))


def make_corpus(workdir: Path, stories: int) -> Path:
    """The corpus of `stories` train stories under `workdir`, made once and reused."""
    out = workdir / f"corpus-{stories}-{SHARD_ROWS}"
    if not (out / "data").exists():
        # Parquet files of SHARD_ROWS rows at every scale: datasets converts parquet one row group at a time
        # (a 530K-row group holds ~425 MB of text), so equal groups keep the 1x/4x memory comparison fair.
        partial = workdir / f".{out.name}.partial"
        subprocess.run([sys.executable, str(MAKE_CORPUS), str(partial), "--train", str(stories), "--validation",
                        str(validation_size(stories)), "--layout", "hub", "--seed", "0", "--shard-rows",
                        str(SHARD_ROWS)], check=True, stdout=subprocess.DEVNULL)
        partial.rename(out)
    return out


def row_group_shares(corpus: Path, parts: int) -> list:
    """The corpus's parquet row groups dealt into `parts` shares of about equal story counts."""
    import pyarrow.parquet as pq

    shares, rows = [[] for _ in range(parts)], [0] * parts
    for path in sorted((corpus / "data").glob("*.parquet")):
        meta = pq.ParquetFile(path).metadata
        for group in range(meta.num_row_groups):
            k = rows.index(min(rows))
            shares[k].append((str(path), group))
            rows[k] += meta.row_group(group).num_rows
    return shares
