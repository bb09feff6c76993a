"""Offline problem sets: the families mixed and weighted, the default's sets, and ``offline:`` specs.

Usage:
    from distill.offline import sets as offline_sets
    problems = offline_sets.from_spec("offline:train?n=1200&mix=arithmetic:3,decimal_compare:2")
    held_out = offline_sets.default_eval_problems()              # = datasets/offline-eval.jsonl
    mixed = offline_sets.make_mixed(30, seed=2, split="dev")     # 10 per family, interleaved

Which problems a spec names; how each family's problems are made and solved is
distill.offline.families's. A family's problems are always the first ones of its seeded stream, so a
set, a larger set and a differently weighted mix share the problems they have in common.
"""

from __future__ import annotations

from distill.artifacts import Problem
from distill.offline.families import FAMILIES, SPLITS, make_problems

DEFAULT_TRAIN = 300  # the bundled training set (datasets/offline-train.jsonl), 100 per family
DEFAULT_DEV = 90  # problems every choice of settings is made on, 30 per family
DEFAULT_EVAL = 150  # held-out problems the default scores the student on, before and after, 50 per family


def make_mixed(n: int, seed: int, split: str = "train", families: tuple[str, ...] = FAMILIES,
               weights: tuple[int, ...] | None = None) -> list[dict]:
    """``n`` problems spread over ``families`` (interleaved) in proportion to ``weights`` (evenly
    when None), reproducible by ``seed``. A family's problems are the first ones of its stream, so
    changing the mix keeps the problems both mixes share."""
    weights = weights or (1,) * len(families)
    per = _apportion(n, weights)
    sets = [make_problems(f, k, seed, split) for f, k in zip(families, per) if k]
    return [p for group in _interleave(sets) for p in group]


def _apportion(n: int, weights: tuple[int, ...]) -> list[int]:
    """``n`` split in proportion to ``weights`` (largest remainders, ties to the earlier family)."""
    total = sum(weights)
    per = [n * w // total for w in weights]
    rest = sorted(range(len(weights)), key=lambda i: (-(n * weights[i] % total), i))
    for i in rest[: n - sum(per)]:
        per[i] += 1
    return per


def default_train_problems(n: int = DEFAULT_TRAIN, seed: int = 0) -> list[Problem]:
    """The bundled training set (datasets/offline-train.jsonl): the first 100 problems of each
    family, which the offline default's weighted 1,200 contain; eval's chance rates are taken on it."""
    return make_mixed(n, seed, "train")


def default_eval_problems(n: int = DEFAULT_EVAL, seed: int = 0) -> list[Problem]:
    """The offline default's fixed held-out set (the same as datasets/offline-eval.jsonl)."""
    return make_mixed(n, seed, "eval")


def default_dev_problems(n: int = DEFAULT_DEV, seed: int = 0) -> list[Problem]:
    """The dev set every setting is chosen on (the same as datasets/offline-dev.jsonl)."""
    return make_mixed(n, seed, "dev")


def from_spec(spec: str) -> list[Problem] | None:
    """Problems for ``offline:<split>[:<family>][?n=N&seed=S]``; None when ``spec`` is not ``offline:``.

    ``offline:train``, ``offline:dev`` and ``offline:eval`` are the offline default's sets (the same
    as the files in datasets/), made in code so they work from any working directory and in an installed wheel.
    """
    if not spec.startswith("offline:"):
        return None
    body, _, query = spec[len("offline:"):].partition("?")
    split, _, family = body.partition(":")
    opts = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
    unknown = set(opts) - {"n", "seed", "mix"} or ({split} - set(SPLITS))
    if unknown or (family and family not in FAMILIES) or (family and "mix" in opts):
        raise ValueError(f"bad offline source {spec!r}: expected offline:{'|'.join(SPLITS)}"
                         f"[:{'|'.join(FAMILIES)}][?n=N&seed=S&mix=FAMILY:WEIGHT,...]")
    n = opts.get("n", str({"train": DEFAULT_TRAIN, "dev": DEFAULT_DEV, "eval": DEFAULT_EVAL}[split]))
    seed = opts.get("seed", "0")
    if not (n.isdigit() and seed.isdigit()):
        raise ValueError(f"bad offline source {spec!r}: n= and seed= take whole numbers")
    n, seed = int(n), int(seed)
    if family:
        return make_problems(family, n, seed, split)
    families, weights = _parse_mix(opts["mix"], spec) if "mix" in opts else (FAMILIES, None)
    return make_mixed(n, seed, split, families, weights)


def _parse_mix(mix: str, spec: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """``arithmetic:2,decimal_compare:1`` -> the families named, in FAMILIES order, and their weights."""
    weights: dict[str, int] = {}
    for part in mix.split(","):
        name, _, weight = part.partition(":")
        if name not in FAMILIES or name in weights or not weight.isdigit() or int(weight) < 1:
            raise ValueError(f"bad offline source {spec!r}: mix= takes FAMILY:WEIGHT pairs, each family of "
                             f"{', '.join(FAMILIES)} at most once, weights whole numbers >= 1; got {part!r}")
        weights[name] = int(weight)
    families = tuple(f for f in FAMILIES if f in weights)
    return families, tuple(weights[f] for f in families)


def _interleave(sets: list[list[dict]]) -> list[list[dict]]:
    longest = max((len(s) for s in sets), default=0)
    return [[s[i] for s in sets if i < len(s)] for i in range(longest)]
