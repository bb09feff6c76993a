"""Read the traces file a block at a time and measure every line on all cores (or on Ray) into the run's store.

Usage:
    from distill.filter.scan import measure_all
    measure_all(cfg, eval_index, cache, store)   # every line's result in store (cached or measured now)

Lines the cache knows are not measured again. At most a block of lines (2,000 or 16 MB) and a
window of chunks per worker are in memory at once: ``Pool.imap`` would read the whole file
into its task queue ahead of the workers, so chunks are submitted a few at a time instead.
The first bad line (after all are read) stops the stage with its line number and field.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

from distill.artifacts import pair_key
from distill.errors import InputError
from distill.filter import measure as measure_mod
from distill.filter.config import FilterConfig
from distill.filter.decontam import EvalIndex
from distill.filter.measure import init_worker, measure_chunk
from distill.filter.store import ResultCache, RunStore
from distill.progress import progress_bar

__all__ = ["Scan", "measure_all"]


class Scan:
    """Reads the traces file in blocks: records every line in the store, passes on the cached
    results, and yields the rest in chunks for the workers (one block in memory at a time)."""

    BLOCK = 2000           # lines per cache look-up
    BLOCK_BYTES = 16 << 20  # or fewer, when the traces are long

    def __init__(self, path: Path, store: RunStore, cache: ResultCache, chunksize: int) -> None:
        self.path, self.store, self.cache, self.chunksize = path, store, cache, chunksize
        self.torn_line: int | None = None
        self.hash_of: dict[int, str] = {}  # lines sent to the workers and not yet back

    def chunks(self) -> Iterator[list[tuple[int, bytes]]]:
        try:
            handle = self.path.open("rb")
        except OSError as exc:
            raise InputError(f"cannot read traces ({exc.strerror})", path=self.path) from None
        block: list[tuple[int, int, str, bytes]] = []
        size = 0
        with handle:
            offset, line_no = 0, 0
            for raw in handle:
                line_no += 1
                start, offset = offset, offset + len(raw)
                if not raw.strip():
                    continue
                if not raw.endswith(b"\n"):
                    self.torn_line = line_no
                block.append((line_no, start, hashlib.blake2b(raw.rstrip(b"\r\n"), digest_size=12).hexdigest(), raw))
                size += len(raw)
                if len(block) >= self.BLOCK or size >= self.BLOCK_BYTES:
                    yield from self._block(block)
                    block, size = [], 0
        yield from self._block(block)

    def _block(self, block: list[tuple[int, int, str, bytes]]) -> Iterator[list[tuple[int, bytes]]]:
        self.store.add_lines([(n, off, h) for n, off, h, _ in block])
        cached = self.cache.get_many(list({h for _, _, h, _ in block}))
        self.store.add_results(((n, h, cached[h]) for n, _, h, _ in block if h in cached), fresh=False)
        todo = [(n, raw) for n, _, h, raw in block if h not in cached]
        self.hash_of.update((n, h) for n, _, h, _ in block if h not in cached)
        for start in range(0, len(todo), self.chunksize):
            yield todo[start:start + self.chunksize]


def measure_all(cfg: FilterConfig, index: EvalIndex | None, cache: ResultCache, store: RunStore) -> None:
    """Every line's result into the store (cached or computed on all cores); raises on the first bad line."""
    path = Path(cfg.traces)
    if not path.is_file():
        raise InputError("traces file not found", path=path)
    scan = Scan(path, store, cache, cfg.chunksize)
    first_bad: tuple | None = None
    bad = 0
    workers = cfg.workers or os.cpu_count() or 1
    batches = _map(scan.chunks(), cfg, index, workers, max(1, path.stat().st_size))
    # closing: an error stops the workers (a pool, Ray actors) now, not when the traceback is freed
    with progress_bar(total=None, desc="filter", unit="trace", enabled=cfg.progress) as bar, closing(batches):
        for batch in batches:
            done = []
            for item in batch:
                if item[0] == "ok":
                    pair_key(item[2], None, item[1])  # a negative sample stops here, naming its line
                    done.append(item)
                elif item[1] != scan.torn_line:  # a torn last line is a writer still writing
                    bad += 1
                    first_bad = item if first_bad is None or item[1] < first_bad[1] else first_bad
            hashes = {item[1]: scan.hash_of.pop(item[1]) for item in batch}
            store.add_results(((n, hashes[n], r) for _, n, r in done), fresh=True)
            cache.put_many((hashes[n], r) for _, n, r in done)
            bar.update(len(batch))
    if first_bad:
        _, line_no, message, field = first_bad
        more = f" (and {bad - 1} more bad lines)" if bad > 1 else ""
        raise InputError(message + more, path=path, line=line_no, field=field)


def _map(chunks: Iterator, cfg: FilterConfig, index: EvalIndex | None, workers: int, size: int) -> Iterator:
    if cfg.engine == "ray":  # asked for, whatever the size: the same measure_chunk on Ray actors
        from distill.filter.on_ray import measure_on_ray

        yield from measure_on_ray(chunks, cfg, index)
        return
    # Small inputs are not worth starting processes for (~50 ms each with fork).
    if workers <= 1 or size < 256 * 1024:
        init_worker(cfg, index)
        yield from map(measure_chunk, chunks)
        return
    measure_mod.import_verifier()  # forked workers inherit the imported verifier and sympy
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(workers, initializer=init_worker, initargs=(cfg, index)) as pool:
        # Pool.imap would read the whole file into its task queue ahead of the workers; a bounded
        # window of chunks in flight keeps memory flat and the output in file order.
        pending: deque = deque()
        for chunk in chunks:
            pending.append(pool.apply_async(measure_chunk, (chunk,)))
            if len(pending) >= workers * 4:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
