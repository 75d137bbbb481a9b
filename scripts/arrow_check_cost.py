"""What load_prepared's structural Arrow check (`store.check_arrow`) costs on a prepared folder.

    python scripts/arrow_check_cost.py tinystories_prepared [--repeat 3]

Prints, per repeat, the seconds of `check_arrow` over every split with the folder's Arrow files first
dropped from the page cache (posix_fadvise DONTNEED on these files only: a cold read from disk), then again
warm, and `load_prepared` with and without the check.
"""
import argparse
import os
import time
from pathlib import Path

from tinystories_hf.store import load as store  # load_prepared, and the check_arrow it calls


def drop_from_page_cache(folder: Path) -> None:
    for path in folder.rglob("*.arrow"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def seconds(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    dataset, _ = store.load_prepared(args.folder)
    rows = sum(ds.num_rows for ds in dataset.values())
    size = sum(p.stat().st_size for p in args.folder.rglob("*.arrow"))
    print(f"{args.folder.name}: {rows:,} rows, {size / 2**20:,.0f} MiB of Arrow files; {os.cpu_count()} CPUs")

    def check():
        for split, ds in dataset.items():
            store.check_arrow(ds, args.folder / split)

    real = store.check_arrow
    for _ in range(args.repeat):
        drop_from_page_cache(args.folder)
        cold, warm = seconds(check), seconds(check)
        with_check = seconds(lambda: store.load_prepared(args.folder))
        store.check_arrow = lambda *a, **k: None
        without = seconds(lambda: store.load_prepared(args.folder))
        store.check_arrow = real
        print(f"check_arrow: {cold:.2f} s cold, {warm:.2f} s warm; load_prepared (warm): {with_check:.2f} s, "
              f"{without:.2f} s without the check")


if __name__ == "__main__":
    main()
