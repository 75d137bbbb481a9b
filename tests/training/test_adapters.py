"""The training adapters on real prepared stories: exact item contents against an independently built stream,
the minGPT Trainer's DataLoader call and the HF Trainer training a GPT-Neo, DDP shares, memory on 200K stories."""
import collections
import json
import math
import sys

import datasets
import numpy as np
import processes
import pyarrow as pa
import pytest
import torch
import torch.nn.functional as F
from transformers import GPTNeoForCausalLM, Trainer, TrainingArguments

from tinystories_hf import PackingCollator, TinyStoriesDataset, TinyStoriesDatasetPacked, TinyStoriesError
from tinystories_hf.store.folder import save_prepared
from tinystories_hf.training.models import gpt_neo_config

DATASETS = [TinyStoriesDatasetPacked, TinyStoriesDataset]


@pytest.fixture(scope="module")
def folder(prepared_sample):
    return prepared_sample.output


def stories_of(prepared_sample, split):
    """The split's stories as plain Python lists, read with datasets' own row access."""
    return [list(row["input_ids"]) for row in prepared_sample.dataset[split]]


def stream_of(stories, separator):
    return [token for story in stories for token in story + [separator]]


def tiny_gpt_neo(tokenizer, block_size):
    torch.manual_seed(0)
    return GPTNeoForCausalLM(gpt_neo_config(32, tokenizer=tokenizer, num_layers=2, num_heads=4, context=block_size))


@pytest.mark.parametrize("block_size", [512, 100])
def test_packed_windows_reproduce_the_stream(prepared_sample, folder, block_size):
    tokenizer = prepared_sample.tokenizer
    stories = stories_of(prepared_sample, "train")
    stream = np.array(stream_of(stories, tokenizer.eos_id))
    packed = TinyStoriesDatasetPacked(folder, split="train", block_size=block_size)

    assert len(packed) == (len(stream) - 1) // block_size  # only the tail that fills no window is dropped
    xs, ys = zip(*(packed[i] for i in range(len(packed))))
    assert all(x.dtype == y.dtype == torch.int64 and x.shape == y.shape == (block_size,) for x, y in zip(xs, ys))
    joined = torch.cat(xs).numpy()
    assert np.array_equal(joined, stream[: len(joined)])
    assert all(torch.equal(x[1:], y[:-1]) for x, y in zip(xs, ys))  # y is x shifted by one
    assert np.array_equal(torch.stack(ys)[:, -1].numpy(), stream[block_size::block_size][: len(ys)])
    # The separator sits exactly after each story, and nowhere inside one.
    story_ends = np.cumsum([len(s) + 1 for s in stories]) - 1
    assert np.array_equal(np.flatnonzero(joined == tokenizer.eos_id), story_ends[story_ends < len(joined)])
    assert 0 <= joined.min() and joined.max() < tokenizer.vocab_size == packed.get_vocab_size() == 10_000
    assert packed.get_block_size() == block_size


@pytest.mark.parametrize("block_size,add_eos", [(600, True), (64, True), (64, False)])
def test_story_items_are_padded_with_eos_and_masked(prepared_sample, folder, block_size, add_eos):
    eos = prepared_sample.tokenizer.eos_id
    stories = stories_of(prepared_sample, "validation")
    dataset = TinyStoriesDataset(folder, split="validation", block_size=block_size, add_eos=add_eos)
    assert len(dataset) == len(stories) == 55
    for k, story in enumerate(stories):
        seq = (story + [eos] if add_eos else story)[: block_size + 1]
        expected_x = seq[:block_size] + [eos] * (block_size - len(seq[:block_size]))
        expected_y = seq[1:] + [-1] * (block_size - len(seq[1:]))
        x, y = dataset[k]
        assert x.tolist() == expected_x and y.tolist() == expected_y
    if block_size == 600:  # every story fits: each ends with EOS as the last real target
        assert all(int((y != -1).sum()) == len(s) for (_, y), s in zip(dataset, stories))


def test_sources_give_the_same_items_and_bad_sources_fail_clearly(prepared_sample, folder):
    tokenizer = prepared_sample.tokenizer
    by_path = TinyStoriesDatasetPacked(str(folder), split="validation", block_size=64)
    loaded = datasets.load_from_disk(str(folder))
    others = [TinyStoriesDatasetPacked(folder, split="validation", block_size=64),  # pathlib.Path
              TinyStoriesDatasetPacked(loaded, split="validation", block_size=64),  # DatasetDict: tokenizer beside it
              TinyStoriesDatasetPacked(loaded["validation"], block_size=64),  # Dataset: same
              TinyStoriesDatasetPacked(loaded, split="validation", block_size=64, tokenizer=tokenizer)]
    for other in others:
        assert len(other) == len(by_path) and other.get_vocab_size() == tokenizer.vocab_size
        assert all(torch.equal(other[i][0], by_path[i][0]) for i in range(len(by_path)))

    # A shuffled view (an indices mapping over the same table) is read in its own row order.
    shuffled = loaded["validation"].shuffle(seed=3)
    per_story = TinyStoriesDataset(shuffled, block_size=600)
    for k in range(len(shuffled)):
        story = list(shuffled[k]["input_ids"])
        assert per_story[k][0][: len(story)].tolist() == story

    in_memory = datasets.Dataset.from_dict({"input_ids": [[5, 6, 7]] * 4})
    with pytest.raises(TinyStoriesError, match="tokenizer="):
        TinyStoriesDataset(in_memory)
    assert TinyStoriesDataset(in_memory, tokenizer=tokenizer, block_size=4)[0][1].tolist() == [6, 7, tokenizer.eos_id, -1]
    with pytest.raises(TinyStoriesError, match="split 'test' not found"):
        TinyStoriesDataset(folder, split="test")
    with pytest.raises(TinyStoriesError, match="not found"):
        TinyStoriesDataset(folder.parent / "missing")
    with pytest.raises(TinyStoriesError, match="no 'input_ids' column"):
        TinyStoriesDataset(datasets.Dataset.from_dict({"text": ["a"]}), tokenizer=tokenizer)
    with pytest.raises(TinyStoriesError, match="not lists of integer token ids"):
        TinyStoriesDataset(datasets.Dataset.from_dict({"input_ids": ["a b"]}), tokenizer=tokenizer)
    with pytest.raises(TinyStoriesError, match="too few tokens"):
        TinyStoriesDatasetPacked(in_memory, tokenizer=tokenizer, block_size=16)
    with pytest.raises(IndexError):
        by_path[len(by_path)]


@pytest.mark.parametrize("dataset_class", DATASETS)
def test_mingpt_trainer_dataloader_trains_gpt_neo(folder, dataset_class):
    dataset = dataset_class(folder, split="train", block_size=64)
    model = tiny_gpt_neo(dataset.tokenizer, dataset.get_block_size())
    # karpathy/minGPT mingpt/trainer.py, Trainer.run(), verbatim but for the seeded generator.
    train_loader = torch.utils.data.DataLoader(
        dataset,
        sampler=torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=int(1e10),
                                               generator=torch.Generator().manual_seed(0)),
        shuffle=False,
        pin_memory=True,
        batch_size=8,
        num_workers=2,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _, batch in zip(range(30), train_loader):
        x, y = batch
        assert x.shape == y.shape == (8, 64) and x.dtype == y.dtype == torch.int64
        logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1), ignore_index=-1)  # minGPT's loss
        model.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    print(dataset_class.__name__, [round(v, 2) for v in losses])
    assert all(math.isfinite(v) for v in losses)
    assert abs(losses[0] - math.log(10_000)) < 0.5  # an untrained model starts near the uniform guess
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.0


def test_hf_trainer_with_packing_collator(prepared_sample, tmp_path):
    tokenizer = prepared_sample.tokenizer
    model = tiny_gpt_neo(tokenizer, 64)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=20, per_device_train_batch_size=4,
                             learning_rate=3e-3, lr_scheduler_type="constant", logging_steps=1, save_strategy="no", report_to="none",
                             use_cpu=True, dataloader_num_workers=0, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=prepared_sample.dataset["train"],
                      data_collator=PackingCollator(separator=tokenizer.eos_id, block_size=64, return_dict=True))
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 20 and all(math.isfinite(v) for v in losses)
    assert abs(losses[0] - math.log(10_000)) < 0.5
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.8


def test_packing_collator_rows(prepared_sample):
    eos = prepared_sample.tokenizer.eos_id
    stories = stories_of(prepared_sample, "validation")[:6]
    examples = [{"input_ids": stories[0]}, {"input_ids": np.array(stories[1], dtype=np.uint16)},
                {"input_ids": torch.tensor(stories[2])}, stories[3], *stories[4:]]  # rows, arrays, tensors, lists
    stream = stream_of(stories, eos)
    block = 128

    x, y = PackingCollator(separator=eos, block_size=block)(examples)
    rows = math.ceil((len(stream) - 1) / block)
    padded = stream + [eos] * (rows * block + 1 - len(stream))
    assert x.shape == y.shape == (rows, block)
    assert x.flatten().tolist() == padded[:-1]
    targets = padded[1:len(stream)] + [-1] * (rows * block + 1 - len(stream))
    assert y.flatten().tolist() == targets

    batch = PackingCollator(separator=eos, block_size=block, return_dict=True)(examples)
    rows = math.ceil(len(stream) / block)
    assert set(batch) == {"input_ids", "labels", "position_ids", "document_ids"}
    assert all(t.shape == (rows, block) and t.dtype == torch.int64 for t in batch.values())
    flat = {name: t.flatten().tolist() for name, t in batch.items()}
    padding = rows * block - len(stream)
    assert flat["input_ids"] == stream + [eos] * padding
    assert flat["labels"] == stream + [-100] * padding
    documents, positions = [], []
    for doc, story in enumerate(stories):
        documents += [doc] * (len(story) + 1)
    documents += [-1] * padding
    for i, doc in enumerate(documents):  # restart at each story, at each row, and where padding starts
        positions.append(0 if i % block == 0 or doc != documents[i - 1] else positions[-1] + 1)
    assert flat["document_ids"] == documents and flat["position_ids"] == positions
    assert max(positions) < block

    with pytest.raises(TinyStoriesError, match="empty batch"):
        PackingCollator(separator=eos)([])


def _ddp_rank(rank, folder, out, world_size):
    torch.distributed.init_process_group("gloo", init_method=f"file://{out}/store", rank=rank, world_size=world_size)
    try:
        for dataset_class in DATASETS:
            full = dataset_class(folder, split="validation", block_size=64)
            share = full.shard()  # rank and world size from the process group
            rows = np.stack([share[i][0].numpy() for i in range(len(share))])
            np.save(f"{out}/{dataset_class.__name__}-{rank}.npy", rows, allow_pickle=False)
            total = torch.tensor([len(share)])
            torch.distributed.all_reduce(total)
            assert total.item() == len(full)
    finally:
        torch.distributed.destroy_process_group()


def test_ddp_ranks_get_disjoint_complete_shares(folder, tmp_path):
    processes.run_ranks(_ddp_rank, (str(folder), str(tmp_path), 2), 2)
    for dataset_class in DATASETS:
        full = dataset_class(folder, split="validation", block_size=64)
        everything = [tuple(full[i][0].tolist()) for i in range(len(full))]
        shares = [[tuple(row) for row in np.load(tmp_path / f"{dataset_class.__name__}-{rank}.npy").tolist()]
                  for rank in range(2)]
        assert abs(len(shares[0]) - len(shares[1])) <= 1 and min(map(len, shares)) > 0
        assert len(shares[0]) + len(shares[1]) == len(everything)  # disjoint ...
        assert collections.Counter(shares[0] + shares[1]) == collections.Counter(everything)  # ... and complete
    with pytest.raises(TinyStoriesError, match="not initialised"):
        full.shard()
    assert len(full.shard(rank=2, world_size=3)) == len(full) - 2 * len(full) // 3


def test_spawned_dataloader_workers_rebuild_the_views(folder):
    packed = TinyStoriesDatasetPacked(folder, split="validation", block_size=64)
    loader = torch.utils.data.DataLoader(packed, batch_size=16, num_workers=1, multiprocessing_context="spawn")
    x = torch.cat([x for x, _ in loader])
    assert torch.equal(x, torch.stack([packed[i][0] for i in range(len(packed))]))


@pytest.fixture(scope="module")
def folder_200k(prepared_sample, tmp_path_factory):
    """200K stories in the prepared layout, written by the pipeline's own save step: story lengths drawn from
    the real sample, ids uniform over the real 10K vocabulary (uint16, as tinystories-prepare stores them)."""
    rng = np.random.default_rng(0)
    real_lengths = np.array(prepared_sample.dataset["train"]["length"])
    splits, info = {}, dict(prepared_sample.info, splits={})  # the sample's info, with these splits' counts
    for split, rows in (("train", 200_000), ("validation", 2_000)):
        lengths = rng.choice(real_lengths, rows).astype(np.int32)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        ids = rng.integers(2, prepared_sample.tokenizer.vocab_size, int(offsets[-1]), dtype=np.uint16)
        splits[split] = datasets.Dataset(pa.table({"input_ids": pa.ListArray.from_arrays(offsets, ids),
                                                   "length": lengths}))
        info["splits"][split] = {"stories": rows, "kept": rows, "skipped_short": 0, "skipped_empty": 0,
                                 "truncated": 0, "tokens": int(offsets[-1]), "unk_tokens": 0}
    out = tmp_path_factory.mktemp("big") / "prepared200k"
    return save_prepared(out, datasets.DatasetDict(splits), prepared_sample.tokenizer, info, overwrite=False), info


MEASURE_RSS = """
import gc, json, sys
import numpy as np, psutil
from tinystories_hf import TinyStoriesDataset, TinyStoriesDatasetPacked, load_prepared
rss = lambda: psutil.Process().memory_info().rss
load_prepared(sys.argv[2])  # imports and library caches first: the growth below is the dataset's own
gc.collect()
before = rss()
dataset = {"packed": TinyStoriesDatasetPacked, "story": TinyStoriesDataset}[sys.argv[1]](sys.argv[2], split="train")
gc.collect()
built = rss()
copied = np.concatenate(dataset.stories.values)  # control: what materialising the token ids costs
print(json.dumps({"items": len(dataset), "growth": built - before, "copy_growth": rss() - built,
                  "copy_bytes": copied.nbytes}))
"""


@pytest.mark.parametrize("kind", ["packed", "story"])
def test_building_over_200k_stories_keeps_memory_flat(folder_200k, kind):
    folder, info = folder_200k
    run = processes.run([sys.executable, "-c", MEASURE_RSS, kind, str(folder)], capture_output=True, text=True,
                         check=True)
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    stream = info["splits"]["train"]["tokens"] + 200_000  # a separator after each story
    assert figures["items"] == {"story": 200_000, "packed": (stream - 1) // 512}[kind]
    assert figures["copy_bytes"] > 70 * 2**20 and figures["copy_growth"] > 0.9 * figures["copy_bytes"]  # RSS sees it
    assert figures["growth"] < 50 * 2**20, figures
