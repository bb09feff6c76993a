"""The filter's per-trace state on disk (sqlite): where each line is, its result, the winners, the decisions; and the cache.

Usage:
    with RunStore.create(folder) as store:                 # a scratch database, deleted on close
        store.add_lines([(line_no, offset, line_hash), ...])
        store.add_results([(line_no, line_hash, result), ...], fresh=True)
        unique, superseded = store.mark_winners()          # the last record of each (id, sample)
        for pid, rows in store.problems(): ...             # [(line_no, line_hash, result)], first-seen order
        store.add_decisions([(line_no, verdict), ...]); store.decisions()   # in line order
    cache = ResultCache(Path("filter-cache/<key>.sqlite"))   # line hash -> result, kept between runs
    cache.get_many(hashes); cache.put_many([(line_hash, result)]); cache.close()

A million traces would hold gigabytes as Python dicts; here they cost a few hundred bytes each on
disk, and the stage holds one chunk of lines or one problem's traces at a time. A result's MinHash
sketch (64 integers, most of its size as JSON) is stored as packed int64.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import tempfile
from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["RunStore", "ResultCache", "encode", "decode"]

log = logging.getLogger(__name__)
_FAST = ("PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF", "PRAGMA temp_store=FILE", "PRAGMA cache_size=-8000")


def encode(result: dict) -> tuple[str, bytes | None]:
    """(JSON without the sketch, the sketch as packed int64 or None)."""
    sig = result.get("sig")
    if sig is None:
        return json.dumps(result, separators=(",", ":")), None
    rest = {k: v for k, v in result.items() if k != "sig"}
    return json.dumps(rest, separators=(",", ":")), array("q", sig).tobytes()


def decode(text: str, sig: bytes | None) -> dict:
    """The result :func:`encode` stored (key order aside, the sketch comes back last)."""
    result = json.loads(text)
    if sig is not None:
        result["sig"] = array("q", sig).tolist()
    return result


class RunStore:
    """One run's lines, results and decisions, in a scratch sqlite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path)
        for pragma in _FAST:  # scratch data: a crash loses nothing that the next run does not redo
            self.db.execute(pragma)
        self.db.executescript("""
            CREATE TABLE lines (line INTEGER PRIMARY KEY, offset INTEGER, hash TEXT);
            CREATE TABLE res (line INTEGER PRIMARY KEY, hash TEXT, pid TEXT, sample INTEGER, fresh INTEGER,
                              win INTEGER DEFAULT 0, r TEXT, sig BLOB);
            CREATE TABLE dec (line INTEGER PRIMARY KEY, v TEXT);""")

    @classmethod
    def create(cls, folder: Path) -> RunStore:
        """A new store in ``folder``, after removing those a killed run left behind (its pid is gone)."""
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob(".run-*.sqlite"):
            pid = old.name.split("-")[1]
            if pid.isdigit() and not _alive(int(pid)):
                old.unlink(missing_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".run-{os.getpid()}-", suffix=".sqlite", dir=folder)
        os.close(fd)
        return cls(Path(name))

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()
        self.path.unlink(missing_ok=True)

    def add_lines(self, rows: list[tuple[int, int, str]]) -> None:
        self.db.executemany("INSERT INTO lines VALUES (?, ?, ?)", rows)

    def add_results(self, rows: Iterable[tuple[int, str, dict]], fresh: bool) -> None:
        self.db.executemany("INSERT INTO res (line, hash, pid, sample, fresh, r, sig) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            ((n, h, r["id"], r["sample"], int(fresh), *encode(r)) for n, h, r in rows))

    def counts(self) -> dict[str, int]:
        """lines read, results, and the distinct lines measured by this run."""
        one = self.db.execute
        return {"lines": one("SELECT COUNT(*) FROM lines").fetchone()[0],
                "results": one("SELECT COUNT(*) FROM res").fetchone()[0],
                "measured": one("SELECT COUNT(DISTINCT hash) FROM res WHERE fresh = 1").fetchone()[0]}

    def mark_winners(self) -> tuple[int, int]:
        """Mark the last record of each (id, sample); returns (winners, records they replaced)."""
        self.db.execute("CREATE INDEX res_pid ON res (pid, sample, line)")
        self.db.execute("UPDATE res SET win = 1 WHERE line IN (SELECT MAX(line) FROM res GROUP BY pid, sample)")
        self.db.commit()
        unique = self.db.execute("SELECT COUNT(*) FROM res WHERE win = 1").fetchone()[0]
        return unique, self.counts()["results"] - unique

    def winners(self) -> Iterator[tuple[int, str, dict]]:
        """(line, hash, result) of each winner, in line order."""
        for line, line_hash, text, sig in self.db.execute(
                "SELECT line, hash, r, sig FROM res WHERE win = 1 ORDER BY line"):
            yield line, line_hash, decode(text, sig)

    def problems(self) -> Iterator[tuple[str, list[tuple[int, str, dict]]]]:
        """Each problem's winners in line order, problems in the order of their first winning line."""
        firsts = self.db.cursor()  # a cursor of its own: the inner query must not reset it
        firsts.execute("SELECT pid, MIN(line) AS first FROM res WHERE win = 1 GROUP BY pid ORDER BY first")
        for pid, _ in firsts:
            rows = self.db.execute("SELECT line, hash, r, sig FROM res WHERE pid = ? AND win = 1 ORDER BY line",
                                   (pid,)).fetchall()
            yield pid, [(line, h, decode(text, sig)) for line, h, text, sig in rows]

    def offset(self, line: int) -> int:
        return self.db.execute("SELECT offset FROM lines WHERE line = ?", (line,)).fetchone()[0]

    def add_decisions(self, rows: list[tuple[int, dict]]) -> None:
        self.db.executemany("INSERT INTO dec VALUES (?, ?)",
                            ((n, json.dumps(v, ensure_ascii=False, separators=(",", ":"))) for n, v in rows))

    def decisions(self) -> Iterator[tuple[int, dict]]:
        for line, text in self.db.execute("SELECT line, v FROM dec ORDER BY line"):
            yield line, json.loads(text)

    def replace_decisions(self, rows: list[tuple[int, dict]]) -> None:
        """Decisions changed after the per-problem pass (the learnability selection)."""
        self.db.executemany("INSERT OR REPLACE INTO dec VALUES (?, ?)",
                            ((n, json.dumps(v, ensure_ascii=False, separators=(",", ":"))) for n, v in rows))

    def survivors(self) -> Iterator[tuple[int, str, str, int, dict]]:
        """(line, hash, problem id, sample, decision) of each winner nothing dropped, in line order."""
        for line, line_hash, pid, sample, text in self.db.execute(
                "SELECT res.line, res.hash, res.pid, res.sample, dec.v FROM res JOIN dec ON dec.line = res.line "
                "WHERE res.win = 1 ORDER BY res.line"):
            decision = json.loads(text)
            if decision.get("drop") is None:
                yield line, line_hash, pid, sample, decision

    def decided_problems(self) -> Iterator[tuple[str, list[tuple[int, dict, dict]]]]:
        """Each problem's (line, result, decision), as :meth:`problems` orders them."""
        for pid, rows in self.problems():
            found = dict(self.db.execute("SELECT res.line, dec.v FROM res JOIN dec ON dec.line = res.line "
                                         "WHERE res.pid = ? AND res.win = 1", (pid,)).fetchall())
            yield pid, [(line, r, json.loads(found[line])) for line, _, r in rows]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class ResultCache:
    """line hash -> result between runs, in one sqlite file per cache key; damage only costs time."""

    def __init__(self, path: Path | None) -> None:
        self.db: sqlite3.Connection | None = None
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = self._open(path)
        except sqlite3.DatabaseError as exc:
            log.warning("ignoring the filter cache %s (%s); starting a new one", path, exc)
            path.unlink(missing_ok=True)
            self.db = self._open(path)

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE IF NOT EXISTS c (h TEXT PRIMARY KEY, r TEXT, sig BLOB)")
        db.execute("SELECT COUNT(*) FROM (SELECT h FROM c LIMIT 1)").fetchone()  # reads a page: damage shows now
        return db

    def get_many(self, hashes: list[str]) -> dict[str, dict]:
        if self.db is None or not hashes:
            return {}
        found: dict[str, dict] = {}
        for start in range(0, len(hashes), 500):  # below sqlite's limit on bound parameters
            part = hashes[start:start + 500]
            query = f"SELECT h, r, sig FROM c WHERE h IN ({','.join('?' * len(part))})"
            found.update((h, decode(text, sig)) for h, text, sig in self.db.execute(query, part))
        return found

    def put_many(self, items: Iterable[tuple[str, dict]]) -> None:
        if self.db is not None:
            self.db.executemany("INSERT OR REPLACE INTO c VALUES (?, ?, ?)", ((h, *encode(r)) for h, r in items))
            self.db.commit()  # each batch is kept even if the run is killed later

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
