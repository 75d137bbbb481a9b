"""`StoryBuilder`: one `datasets` builder for every story format, the way `datasets.packaged_modules` builds.

Its config names the format (a module of this package: `shards`, `read`, `invalid_text`), the story column,
the strip option and the content hash of a local source; its `_generate_tables` sends every batch the
format reads through `normalize_stories`. `download_and_prepare(num_proc=N)` converts the shards (files,
parquet row groups, byte ranges of V2 text) in N processes into datasets' Arrow cache, keyed by the config
(so by the content hash); `as_streaming_dataset()` reads the same shards lazily through the same code.
"""
from dataclasses import dataclass

import datasets
import pyarrow as pa
from datasets.builder import Key
from datasets.fingerprint import Hasher

from ..errors import TinyStoriesError
from .layout import FORMAT_MODULES, Layout
from .normalize import read_normalized

LITERAL_EOT = "literal_eot"  # per story: its text holds a literal <|endoftext|> (tokenized as text)
READ_VERSION = "sources/2"  # part of the cache folder: change it when what the readers produce changes
STORY_FEATURES = datasets.Features({"text": datasets.Value("string"), LITERAL_EOT: datasets.Value("bool")})


@dataclass
class StoryConfig(datasets.BuilderConfig):
    """What the stories are read from and how: every field is part of the cache key.

    Example:
        >>> StoryConfig(name="txt", story_format="txt", strip=False).strip
        False
    """

    story_format: str = "json"
    text_column: str = "text"
    strip: bool = True
    content_hash: str | None = None


class StoryBuilder(datasets.ArrowBasedBuilder):
    """Reads a `Layout`'s splits with its format module; every batch normalised, two columns: `text`,
    `literal_eot`.

    Example:
        >>> from tinystories_hf.sources import find_layout
        >>> builder = story_builder(find_layout("demo"))
        >>> builder.download_and_prepare()  # doctest: +SKIP
        >>> builder.as_dataset()["train"].column_names  # doctest: +SKIP
        ['text', 'literal_eot']
    """

    BUILDER_CONFIG_CLASS = StoryConfig

    def _info(self):
        return datasets.DatasetInfo(features=STORY_FEATURES)

    @property
    def _format(self):
        return FORMAT_MODULES[self.config.story_format]

    def _split_generators(self, dl_manager):
        files = self.config.data_files
        if self.config.story_format != "demo":
            files = dl_manager.download(files)  # hf:// files: to the cache (or opened remotely when streaming)
        return [datasets.SplitGenerator(name=split, gen_kwargs={
            "shards": self._format.shards([str(p) for p in paths], text_column=self.config.text_column)})
            for split, paths in files.items()]

    def _generate_tables(self, shards):
        for index, shard in enumerate(shards):
            batches = read_normalized(self._format, shard, text_column=self.config.text_column,
                                      strip=self.config.strip)
            for batch, (texts, literal) in enumerate(batches):
                yield Key(index, batch), pa.table({"text": texts, LITERAL_EOT: literal})

    def _generate_more_gen_kwargs(self, shards):
        more = getattr(self._format, "more_shards", None)
        for shard in shards:
            for part in (more(shard) if more else [shard]):
                yield {"shards": [part]}

    def _prepare_split_single(self, *args, **kwargs):
        # datasets wraps every error of a worker in DatasetGenerationError ("An error occurred while generating
        # the dataset"); ours already say what and where, so they leave the worker as they are.
        try:
            yield from super()._prepare_split_single(*args, **kwargs)
        except datasets.exceptions.DatasetGenerationError as e:
            if isinstance(e.__cause__, TinyStoriesError):
                raise e.__cause__ from None
            raise


def story_builder(layout: Layout, *, text_column: str = "text", strip: bool = True, content_hash=None,
                  cache_dir=None) -> StoryBuilder:
    """The builder of one source; its cache folder is `{cache_dir}/tinystories_sources/{config id}/0.0.0/{hash
    of READ_VERSION}`, the config id a hash of the config (format, files, story column, strip, content hash)."""
    data_files = datasets.data_files.DataFilesDict(
        {split: datasets.data_files.DataFilesList(paths, [()] * len(paths)) for split, paths in
         layout.data_files.items()})
    return StoryBuilder(cache_dir=cache_dir, dataset_name="tinystories_sources", config_name=layout.format,
                        hash=Hasher.hash(READ_VERSION), data_files=data_files, story_format=layout.format,
                        text_column=text_column, strip=strip, content_hash=content_hash)
