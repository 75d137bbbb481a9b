"""TinyStoriesSampler: the global order against torch.randperm seeded as documented (never the sampler's own),
resumes across world sizes on gloo ranks with and without DataLoader workers, StatefulDataLoader in a fresh
process, the HF Trainer's checkpoint resume, and a refusal to resume on other data."""
import collections
import json
import shutil
import sys

import numpy as np
import processes
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.distributed as dist
from conftest import SAMPLE_EOT
from transformers import GPTNeoForCausalLM, Trainer, TrainingArguments

from tinystories_hf import (
    PackingCollator,
    PrepareConfig,
    TinyStoriesDataset,
    TinyStoriesDatasetPacked,
    TinyStoriesError,
    TinyStoriesSampler,
    prepare,
    stream,
)
from tinystories_hf.training.models import gpt_neo_config

SEED, EPOCH, BATCH = 11, 3, 4


def documented_order(num_items, seed=SEED, epoch=EPOCH):
    """The README's rule, computed here: torch.randperm with a generator seeded with seed + epoch."""
    return torch.randperm(num_items, generator=torch.Generator().manual_seed(seed + epoch)).tolist()


@pytest.fixture(scope="module")
def folder(prepared_sample):
    return prepared_sample.output


def packed(folder):
    return TinyStoriesDatasetPacked(folder, split="validation", block_size=64)


def item_index(dataset):
    """x row bytes -> item index, to name the items a DataLoader delivered."""
    index = {dataset[i][0].numpy().tobytes(): i for i in range(len(dataset))}
    assert len(index) == len(dataset)  # every window is distinct, so a row names its item
    return index


def test_order_shares_and_epoch_rules():
    data = list(range(23))
    for epoch in (0, EPOCH):
        order = documented_order(23, epoch=epoch)
        for world_size in (1, 2, 3, 5):
            per_rank = -(-23 // world_size)
            padded = order + order[: per_rank * world_size - 23]  # the last round wraps to the epoch's start
            for r in range(world_size):
                sampler = TinyStoriesSampler(data, seed=SEED, rank=r, world_size=world_size, fingerprint="d")
                sampler.set_epoch(epoch)
                assert len(sampler) == per_rank
                assert list(sampler) == list(sampler) == padded[r::world_size]  # a pass without set_epoch repeats
    dropped = [list(TinyStoriesSampler(data, seed=SEED, rank=r, world_size=5, drop_last=True, fingerprint="d"))
               for r in range(5)]
    assert dropped == [documented_order(23, epoch=0)[r:20:5] for r in range(5)]  # the last 23 % 5 left out
    assert list(TinyStoriesSampler(data, shuffle=False, rank=1, world_size=2, fingerprint="d")) == (data + [0])[1::2]
    few = [list(TinyStoriesSampler(data[:2], seed=SEED, rank=r, world_size=3, fingerprint="d")) for r in range(3)]
    assert few == [[i] for i in documented_order(2, epoch=0) * 2][:3]  # fewer items than ranks: one each


def test_state_is_plain_json_and_resumes_on_any_world_size():
    data = list(range(50))
    order = documented_order(50)
    first = [TinyStoriesSampler(data, seed=SEED, rank=r, world_size=2, fingerprint="d") for r in range(2)]
    taken = []
    for sampler in first:
        sampler.set_epoch(EPOCH)
        it = iter(sampler)
        taken += [next(it) for _ in range(7)]
    state = json.loads(json.dumps(first[0].state_dict()))
    assert state == {"seed": SEED, "shuffle": True, "epoch": EPOCH, "consumed": 14, "num_items": 50, "fingerprint": "d"}
    assert first[1].state_dict() == first[0].state_dict()  # the state is global: any rank's will do
    for world_size in (1, 3, 4):
        rest = []
        for r in range(world_size):
            sampler = TinyStoriesSampler(data, seed=0, rank=r, world_size=world_size, fingerprint="d")
            sampler.load_state_dict(state)
            sampler.set_epoch(EPOCH)  # a resumed loop calls it again: the loaded position stays
            rest.append(list(sampler))
        assert len({len(share) for share in rest}) == 1  # equal shares, no rank waits in a collective
        consumed = collections.Counter(taken + [i for share in rest for i in share])
        tail = -(-36 // world_size) * world_size - 36  # wrap-around of the last round
        assert consumed == collections.Counter(order + order[:tail])

    # samples= takes what the loop consumed, not what a DataLoader drew ahead; the pass's end is the epoch's end.
    sampler = TinyStoriesSampler(data, seed=SEED, rank=1, world_size=3, fingerprint="d")
    it = iter(sampler)
    [next(it) for _ in range(10)]
    assert sampler.state_dict(samples=4)["consumed"] == 12 and sampler.state_dict()["consumed"] == 30
    with pytest.raises(TinyStoriesError, match=r"samples=11, but this rank's current pass has handed out 10"):
        sampler.state_dict(samples=11)
    list(it)
    assert sampler.state_dict(samples=20)["consumed"] == 50  # a partial last batch, counted whole
    sampler.set_epoch(EPOCH + 1)
    assert sampler.state_dict()["consumed"] == 0 and sampler.state_dict()["epoch"] == EPOCH + 1
    with pytest.raises(TinyStoriesError, match="'consumed' is '3', not an integer"):
        sampler.load_state_dict(dict(state, consumed="3"))
    with pytest.raises(TinyStoriesError, match="consumed 51 is outside 0..50"):
        sampler.load_state_dict(dict(state, consumed=51))


def _ddp_phase(rank, folder, out, world_size, phase, num_workers, steps):
    dist.init_process_group("gloo", init_method=f"file://{out}/store-{phase}", rank=rank, world_size=world_size)
    try:
        dataset = packed(folder)
        sampler = TinyStoriesSampler(dataset, seed=SEED)  # rank and world size from the process group
        if phase != "first":
            sampler.load_state_dict(json.loads((out / "state.json").read_text()))
        sampler.set_epoch(EPOCH)
        loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, sampler=sampler, num_workers=num_workers)
        rows, step = [], 0
        for step, (x, _) in enumerate(loader, 1):
            rows.append(x.numpy())
            if step == steps:
                break
        batches = torch.tensor([step, -step])
        dist.all_reduce(batches, op=dist.ReduceOp.MIN)
        assert batches[0] == -batches[1] == step  # every rank took as many batches
        np.save(out / f"{phase}-{rank}.npy", np.concatenate(rows), allow_pickle=False)
        if rank == 0:
            (out / "state.json").write_text(json.dumps(sampler.state_dict(samples=step * BATCH)))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("num_workers", [0, 2])
def test_ddp_resume_on_three_ranks_and_on_one(folder, tmp_path, num_workers):
    dataset = packed(folder)
    index, order = item_index(dataset), documented_order(len(dataset))

    def run(phase, world_size, steps):
        processes.run_ranks(_ddp_phase, (folder, tmp_path, world_size, phase, num_workers, steps), world_size)
        state = json.loads((tmp_path / "state.json").read_text())
        return [index[row.tobytes()] for r in range(world_size)
                for row in np.load(tmp_path / f"{phase}-{r}.npy")], state

    first, state = run("first", 2, 5)
    assert state["consumed"] == 2 * 5 * BATCH and state["epoch"] == EPOCH
    saved = (tmp_path / "state.json").read_text()
    second, state = run("second", 3, 3)
    assert sorted(first + second) == sorted(order[:(2 * 5 + 3 * 3) * BATCH])  # the first N, none twice
    assert state["consumed"] == (2 * 5 + 3 * 3) * BATCH
    (tmp_path / "state.json").write_text(saved)  # the 2-rank state again, now resumed on one rank to the end
    alone, state = run("alone", 1, None)
    assert first + alone == [order[i] for r in range(2) for i in range(r, 40, 2)] + order[40:]
    assert state["consumed"] == len(dataset)


STATEFUL_RESUME = """
import json, sys
import numpy as np
from torchdata.stateful_dataloader import StatefulDataLoader
from tinystories_hf import TinyStoriesDatasetPacked, TinyStoriesSampler
dataset = TinyStoriesDatasetPacked(sys.argv[1], split="validation", block_size=64)
loader = StatefulDataLoader(dataset, batch_size=4, num_workers=2,
                            sampler=TinyStoriesSampler(dataset, seed=int(sys.argv[2]), rank=0, world_size=1))
loader.load_state_dict(json.loads(open(sys.argv[3]).read()))
np.save(sys.argv[4], np.concatenate([x.numpy() for x, _ in loader]), allow_pickle=False)
"""


def test_stateful_dataloader_resumes_with_the_next_batch_in_a_fresh_process(folder, tmp_path):
    from torchdata.stateful_dataloader import StatefulDataLoader

    dataset = packed(folder)
    index, order = item_index(dataset), documented_order(len(dataset), epoch=0)
    loader = StatefulDataLoader(dataset, batch_size=4, num_workers=2,
                                sampler=TinyStoriesSampler(dataset, seed=SEED, rank=0, world_size=1))
    it = iter(loader)
    seen = [index[row.numpy().tobytes()] for _ in range(6) for row in next(it)[0]]
    (tmp_path / "loader.json").write_text(json.dumps(loader.state_dict()))  # plain JSON: no pickle
    del it
    processes.run([sys.executable, "-c", STATEFUL_RESUME, str(folder), str(SEED), str(tmp_path / "loader.json"),
                    str(tmp_path / "rest.npy")], check=True, capture_output=True, text=True)
    rest = [index[row.tobytes()] for row in np.load(tmp_path / "rest.npy")]
    assert seen == order[:24]
    assert rest[:4] == order[24:28] and seen + rest == order  # the exact next batch, then the rest of the epoch


def test_resuming_on_other_data_fails_with_one_line(prepared_demo, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(prepared_demo.output, copy)
    other = prepare(PrepareConfig(source="demo", output=str(tmp_path / "other"), vocab_size=500, max_length=40,
                                num_proc=1))
    stories = TinyStoriesDataset(prepared_demo.output, split="train", block_size=64)
    sampler = TinyStoriesSampler(stories, seed=SEED, rank=0, world_size=1)
    it = iter(sampler)
    [next(it) for _ in range(5)]
    state = sampler.state_dict()

    moved = TinyStoriesSampler(TinyStoriesDataset(copy, split="train", block_size=64), rank=0, world_size=1)
    moved.load_state_dict(state)  # the same stories in another place: the fingerprint is their content
    assert list(moved)[:3] == documented_order(len(stories), epoch=0)[5:8]
    cut = TinyStoriesDataset(other.output, split="train", block_size=64)  # the same stories cut at 40 tokens
    assert len(cut) == len(stories)
    for data in (cut, TinyStoriesDatasetPacked(prepared_demo.output, split="train", block_size=64),
                 TinyStoriesDataset(prepared_demo.output, split="train", block_size=32)):
        with pytest.raises(TinyStoriesError) as failure:
            TinyStoriesSampler(data, rank=0, world_size=1).load_state_dict(state)
        message = str(failure.value)
        assert "\n" not in message and message.startswith("the sampler state was saved for ")
        assert "open the prepared folder, split and block_size the run started with" in message
    with pytest.raises(TinyStoriesError, match="not initialised"):
        TinyStoriesSampler(stories)
    with pytest.raises(TinyStoriesError, match="cannot fingerprint a list: pass fingerprint="):
        TinyStoriesSampler([1, 2], rank=0, world_size=1).state_dict()


class StoryTrainer(Trainer):
    """The README's two lines: the Trainer takes its train sampler from here."""

    def _get_train_sampler(self, train_dataset=None):
        return TinyStoriesSampler(train_dataset, seed=self.args.seed, rank=0, world_size=1)


def test_hf_trainer_resumes_its_checkpoint_on_the_same_order(prepared_sample, tmp_path):
    tokenizer, train = prepared_sample.tokenizer, prepared_sample.dataset["train"].select(range(300))
    row_of = {tuple(ids): i for i, ids in enumerate(train["input_ids"])}
    assert len(row_of) == 300

    def run(output, resume=None):
        seen = []
        collate = PackingCollator(separator=tokenizer.eos_id, block_size=64, return_dict=True)

        def recording(examples):
            seen.append([row_of[tuple(e["input_ids"])] for e in examples])
            return collate(examples)

        torch.manual_seed(0)
        model = GPTNeoForCausalLM(gpt_neo_config(32, tokenizer=tokenizer, num_layers=1, num_heads=2, context=64))
        args = TrainingArguments(output_dir=str(output), max_steps=6, save_steps=3, per_device_train_batch_size=4,
                                 learning_rate=1e-3, report_to="none", use_cpu=True, seed=SEED,
                                 dataloader_num_workers=0, save_only_model=False)
        StoryTrainer(model=model, args=args, train_dataset=train, data_collator=recording).train(
            resume_from_checkpoint=resume)
        return seen

    whole = run(tmp_path / "whole")
    # accelerate collates one batch ahead of the step it trains: the 7th is collated, never trained on.
    assert [i for batch in whole for i in batch] == documented_order(300, epoch=0)[:28]
    resumed = run(tmp_path / "resumed", resume=str(tmp_path / "whole" / "checkpoint-3"))
    assert resumed == whole[3:]  # steps 4-6 on the very batches of the uninterrupted run


@pytest.fixture(scope="module")
def three_shards(tmp_path_factory, sample_stories):
    """An odd number of shards and of stories: three parquet train files, 5,001 stories."""
    root = tmp_path_factory.mktemp("three-shards")
    (root / "data").mkdir()
    for i, (start, stop) in enumerate([(0, 1701), (1701, 3301), (3301, 5001)]):
        path = root / "data" / f"train-{i:05d}-of-00003.parquet"
        pq.write_table(pa.table({"text": sample_stories[start:stop]}), path)
    return str(root)


def story_rows(ds):
    return [tuple(row["input_ids"]) for row in ds]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_stream_gives_every_rank_as_many_batches(three_shards, prepared_sample, num_workers):
    tokenizer = prepared_sample.tokenizer
    whole = story_rows(stream(three_shards, tokenizer=tokenizer))
    assert len(whole) == 5001 and len(set(whole)) == 5001
    ranks = []
    for rank in range(2):
        ds = stream(three_shards, tokenizer=tokenizer, rank=rank, world_size=2)
        assert ds.num_shards == 3
        loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=num_workers, collate_fn=story_rows)
        ranks.append(list(loader))
    assert len(ranks[0]) == len(ranks[1]) > 0 and [len(b) for b in ranks[0]] == [len(b) for b in ranks[1]]
    rows = [row for batches in ranks for batch in batches for row in batch]
    assert len(set(rows)) == len(rows) and set(rows) <= set(whole)  # disjoint shares of the stream's stories
    assert len(whole) - len(rows) < 2 * max(1, num_workers)  # only the incomplete last round of each worker
    if num_workers == 0:  # one stream: rank r has rows r, r + 2, ... of it, the odd one out dropped
        assert [row for batch in ranks[1] for row in batch] == whole[1:5000:2]


def resume_counts(source, tokenizer, shuffle_buffer, points):
    """(repeated, skipped) stories of a resume through datasets' state after each of `points` stories."""
    options = {"tokenizer": tokenizer, "shuffle_buffer": shuffle_buffer, "seed": 0}
    expected, counts = collections.Counter(story_rows(stream(source, **options))), []
    for after in points:
        first = stream(source, **options)
        rows = iter(first)
        before = [tuple(next(rows)["input_ids"]) for _ in range(after)]
        resumed = stream(source, **options)
        resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
        seen = collections.Counter(before + story_rows(resumed))
        counts.append((sum((seen - expected).values()), sum((expected - seen).values())))
    return counts


def test_stream_resume_counts_match_the_readme(prepared_sample):
    """README: without a shuffle buffer a resume repeats and skips nothing; with one it is not exact, and
    repeats and skips at most a buffer's worth (scripts/measure_resume.py --stream measured the figures)."""
    tokenizer = prepared_sample.tokenizer
    assert resume_counts(str(SAMPLE_EOT), tokenizer, 0, [1234, 4321]) == [(0, 0), (0, 0)]
    [(repeated, skipped)] = resume_counts(str(SAMPLE_EOT), tokenizer, 1000, [4250])
    assert 0 < skipped <= 1000 and repeated <= 1000


@pytest.mark.parametrize("num_workers", [0, 2])
def test_stateful_dataloader_epoch_loop_around_a_resume(num_workers):
    """StatefulDataLoader hands the sampler its state only when the next pass starts, after the loop's
    set_epoch(): a state saved after an epoch's last batch resumes on the next epoch whether the checkpoint
    names the finished epoch or the next one; a mid-epoch state goes on with the loop at its epoch; a loop
    at another epoch is one error line, never another epoch's items."""
    from torchdata.stateful_dataloader import StatefulDataLoader

    data = list(range(10))

    def loader():
        sampler = TinyStoriesSampler(data, seed=SEED, rank=0, world_size=1, fingerprint="ten")
        return sampler, StatefulDataLoader(data, batch_size=3, sampler=sampler, num_workers=num_workers)

    def epochs(sampler, dl, first, last=2):
        seen = []
        for epoch in range(first, last + 1):
            sampler.set_epoch(epoch)
            seen += [(epoch, i) for batch in dl for i in batch.tolist()]
        return seen

    expected = [(epoch, i) for epoch in range(3) for i in documented_order(10, epoch=epoch)]
    sampler, dl = loader()
    sampler.set_epoch(0)
    assert [i for batch in dl for i in batch.tolist()] == documented_order(10, epoch=0)
    finished = json.loads(json.dumps(dl.state_dict()))  # after the loop: the iterator is finished
    for checkpoint_epoch in (0, 1):
        sampler, dl = loader()
        dl.load_state_dict(finished)
        assert epochs(sampler, dl, checkpoint_epoch) == expected[10:]

    sampler, dl = loader()
    sampler.set_epoch(1)
    batches = iter(dl)
    taken = [(1, i) for _ in range(2) for i in next(batches).tolist()]
    middle = json.loads(json.dumps(dl.state_dict()))
    del batches
    sampler, dl = loader()
    dl.load_state_dict(middle)
    assert taken + epochs(sampler, dl, 1) == expected[10:]
    sampler, dl = loader()
    dl.load_state_dict(middle)
    sampler.set_epoch(0)  # the loop read sampler.epoch before the loader handed the state over
    with pytest.raises(TinyStoriesError, match=r"^set_epoch\(0\) was called before loading a sampler state of "
                                               r"epoch 1 \(6 of 10 items consumed\): call set_epoch\(1\)"):
        next(iter(dl))


@pytest.mark.parametrize("drop_last, per_rank", [(False, 3), (True, 2)])
def test_a_state_saved_at_the_end_of_an_epoch_whose_last_round_wraps_is_num_items_and_loads(drop_last, per_rank):
    """5 items on 2 ranks: each rank takes ceil(5 / 2) = 3, rank 1's last one wrapping around to the epoch's first
    position (2 with drop_last, the 5th item sitting out). Counting 3 x 2 = 6 consumed samples would be a state
    that cannot be loaded back ("consumed 6 is outside 0..5"): the epoch's end is 5, whatever the wrap."""
    ranks = [TinyStoriesSampler(list(range(5)), seed=3, rank=r, world_size=2, drop_last=drop_last, fingerprint="x")
             for r in range(2)]
    taken = [list(sampler) for sampler in ranks]
    assert [len(t) for t in taken] == [per_rank, per_rank]
    order = torch.randperm(5, generator=torch.Generator().manual_seed(3)).tolist()  # the documented order of epoch 0
    assert taken[1][-1] == (order[0] if not drop_last else order[3])  # the wrap: the epoch's first item again
    for state in (ranks[0].state_dict(), ranks[1].state_dict(samples=per_rank), ranks[0].state_dict(samples=4)):
        assert state["consumed"] == 5 and state["num_items"] == 5  # samples=4: a last batch counted whole
        resumed = TinyStoriesSampler(list(range(5)), seed=3, rank=0, world_size=3, fingerprint="x")
        resumed.load_state_dict(state)
        assert len(resumed) == 0 and list(resumed) == []  # the epoch is over: an empty pass
        resumed.set_epoch(1)  # the next epoch is whole: rank 0 of 3 takes its positions 0 and 3
        epoch1 = torch.randperm(5, generator=torch.Generator().manual_seed(3 + 1)).tolist()
        assert list(resumed) == [epoch1[0], epoch1[3]]
