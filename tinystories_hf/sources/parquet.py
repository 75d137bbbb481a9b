"""Parquet shards (the Hub repo layout `data/train-00000-of-00004.parquet`, or any `.parquet` file).

Only the story column is read; other columns are ignored. Its type is checked in every shard from the file's
schema: strings or binary (UTF-8 checked row by row) of any width, dictionary-encoded or not, or all-null
pass; anything else is an error naming the shard and the type, never a cast (a number cast to "0".."999"
would be counted as a story); so is a story column name given to two columns. Rows are counted
from 0 in each file, as pyarrow and pandas count them.
"""
import pyarrow as pa
import pyarrow.parquet as pq
from datasets.utils.file_utils import xopen

from ..errors import TinyStoriesError, flag
from .normalize import is_text_type

NAME = "Parquet"
SUFFIXES = (".parquet",)
BATCH_ROWS = 10_000


def shards(files, *, text_column: str) -> list:
    """One shard per file: `(path, None)`, None for all its row groups."""
    return [(str(path), None) for path in files]


def more_shards(shard) -> list:
    """The shard's row groups as shards of their own, for `IterableDataset.reshard()` (streaming workers then
    share even a single file)."""
    path, groups = shard
    if groups is not None:
        return [shard]
    with xopen(path, "rb") as f:
        return [(path, (group,)) for group in range(pq.ParquetFile(f).num_row_groups)]


def _check_schema(path: str, parquet: pq.ParquetFile, text_column: str) -> None:
    schema = parquet.schema_arrow
    columns = schema.get_all_field_indices(text_column)
    if not columns:
        raise TinyStoriesError(f"{path}: no column {text_column!r} (columns found: {', '.join(schema.names) or 'none'});"
                               f" pass {flag('text_column')} NAME")
    if len(columns) > 1:
        raise TinyStoriesError(f"{path}: {len(columns)} columns are named {text_column!r}; keep one story column "
                               "per file")
    found = schema.field(columns[0]).type
    if not is_text_type(found):
        raise TinyStoriesError(f"{path}: column {text_column!r} holds {found}, not text; store the stories as "
                               f"strings or pass the story column with {flag('text_column')} NAME")
    if parquet.metadata.num_rows == 0:
        raise TinyStoriesError(f"{path}: the parquet file has no rows; remove it or pass a file with stories")


def read(shard, *, text_column: str):
    """Yield `((path, first row), story column)` per batch of `BATCH_ROWS` rows of the shard's row groups."""
    path, groups = shard
    group, first = None, 0
    try:
        with xopen(path, "rb") as f:
            parquet = pq.ParquetFile(f)
            _check_schema(path, parquet, text_column)
            starts = [0]
            for i in range(parquet.num_row_groups):
                starts.append(starts[-1] + parquet.metadata.row_group(i).num_rows)
            for group in (range(parquet.num_row_groups) if groups is None else groups):
                first = starts[group]
                for batch in parquet.iter_batches(batch_size=BATCH_ROWS, row_groups=[group], columns=[text_column],
                                                  use_threads=False):
                    yield (path, first), batch.column(0)
                    first += batch.num_rows
    except (pa.ArrowException, OSError, EOFError) as e:
        where = "" if group is None else f" row group {group} (from row {first})"
        reason = (str(e).splitlines() or [""])[0]
        raise TinyStoriesError(f"could not read {path}:{where} {type(e).__name__}: {reason}") from None


def invalid_text(shard, where, row: int) -> TinyStoriesError:
    """The error for row `row` of the batch `where` = (path, its first row) that is not valid UTF-8."""
    path, first = where
    return TinyStoriesError(f"{path}: row {first + row}: not valid UTF-8; re-encode the text as UTF-8")
