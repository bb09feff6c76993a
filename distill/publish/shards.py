"""Write a record file as Parquet shards in `push_to_hub`'s layout, a block of rows at a time.

Usage:
    from distill.publish.shards import write_shards
    summary = write_shards(Path("kept.jsonl"), Path("out/dataset/data"))     # data/train-00000-of-0000N.parquet
    summary.rows, summary.columns, summary.files

The last record of each (id, sample) is published once, failed records are left out, and the
``schema`` and ``error`` fields are dropped, as before; but no list of rows is ever built: the
file is read three times (which records win, the column types over all of them, then the
writing), so memory is a block of rows plus 8 bytes a record, whatever the file's size. Shards
are named as datasets 5.2 names them (``{split}-{index:05d}-of-{num_shards:05d}.parquet``,
arrow_dataset.py) and written by its ParquetWriter (features in the schema metadata,
content-defined chunking), so ``load_dataset`` reads them back and a re-upload of an unchanged
shard is recognised by its hash. The same input always gives the same bytes.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from distill.artifacts import is_failed, is_latest, last_of_repeated, pair_hash, pair_key, read_records
from distill.errors import InputError

__all__ = ["ShardSummary", "write_shards", "MAX_SHARD_BYTES", "is_published"]

MAX_SHARD_BYTES = 500 * 10**6  # datasets' config.MAX_SHARD_SIZE ("500MB"), measured here on the JSON lines
BLOCK = 1000                   # rows converted at once (one Parquet row group)
DROPPED = ("schema", "error")


@dataclass
class ShardSummary:
    rows: int = 0
    columns: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def write_shards(src: Path, folder: Path, max_shard_bytes: int = MAX_SHARD_BYTES, split: str = "train",
                 is_traces: bool = True) -> ShardSummary:
    """Write ``src``'s published rows into ``folder`` (created); raises InputError when there are none.

    ``is_traces``: records keyed by (id, sample), the last of a pair published; plain chat records
    (no ids) are published every one, as given."""
    from datasets import Features
    from datasets.arrow_writer import ParquetWriter

    superseded = _superseded(src) if is_traces else {}
    schema, rows = _schema(src, superseded)
    if not rows:
        raise InputError("no records to publish", path=src, field="dataset")
    features = Features.from_arrow_schema(schema)
    columns = list(features)
    shards = max(1, math.ceil(src.stat().st_size / max_shard_bytes))  # the JSON's size: an upper bound
    per_shard = math.ceil(rows / shards)
    shards = math.ceil(rows / per_shard)  # no empty last shard (9 rows over 4 shards: 3, 3, 3)
    folder.mkdir(parents=True, exist_ok=True)
    summary = ShardSummary(rows=rows, columns=columns)
    blocks = _blocks(src, superseded)
    pending: list[dict] = []
    for index in range(shards):
        path = folder / f"{split}-{index:05d}-of-{shards:05d}.parquet"
        writer = ParquetWriter(path=str(path), features=features)
        left = per_shard
        while left > 0:
            if not pending:
                pending = next(blocks, [])
                if not pending:
                    break
            part, pending = pending[:left], pending[left:]
            writer.write_batch({c: [row.get(c) for row in part] for c in columns})
            left -= len(part)
        writer.finalize()
        writer.close()
        summary.files.append(path)
    return summary


def _published(src: Path, superseded: dict[int, int]) -> Iterator[dict]:
    """Every record that is published, in file order."""
    for i, (_, rec) in enumerate(read_records(src)):
        if is_published(rec, i, superseded):
            yield rec


def is_published(rec: dict, index: int, superseded: dict[int, int]) -> bool:
    """Record ``index`` of a file is published: the last of its (id, sample), and not a failed attempt."""
    return is_latest(rec, index, superseded) and not is_failed(rec)


def _blocks(src: Path, superseded: dict[int, int]) -> Iterator[list[dict]]:
    block: list[dict] = []
    for rec in _published(src, superseded):
        block.append(rec)
        if len(block) >= BLOCK:
            yield block
            block = []
    if block:
        yield block


def _superseded(src: Path) -> dict[int, int]:
    """For each (id, sample) written more than once: the index of its last record (the one published)."""
    hashes = array("Q")
    for line, rec in read_records(src):
        pair_key(rec, src, line)  # a mistyped id or sample stops here, naming its line
        hashes.append(pair_hash(rec))
    return last_of_repeated(hashes)


def _schema(src: Path, superseded: dict[int, int]):
    """The Arrow schema of all published rows (struct fields unified across rows) and their count."""
    import pyarrow as pa

    schema = None
    rows = 0
    for block in _blocks(src, superseded):
        rows += len(block)
        # Every key of every row (Table.from_pylist would read the first row's keys only).
        columns = [c for c in dict.fromkeys(k for rec in block for k in rec) if c not in DROPPED]
        found = pa.Table.from_pydict({c: [rec.get(c) for rec in block] for c in columns}).schema
        schema = found if schema is None else pa.unify_schemas([schema, found], promote_options="permissive")
    return schema, rows
