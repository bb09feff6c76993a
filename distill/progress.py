"""Progress bars and end-of-stage tables, the only things library code shows on the terminal.

Usage:
    with progress_bar(total=2000, desc="generate", unit="req", enabled=cfg.progress) as bar:
        bar.update(1); bar.set_postfix(tokens="1.2M", cost="$0.84", failed=0)
    show_table("generate", [("requests", 2000), ("cost", "$1.20")])

Bars and tables go to stderr so stdout stays clean for the output path. ``DISTILL_PROGRESS=0``
turns bars off everywhere (CI logs, tests).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from tqdm.auto import tqdm


def progress_bar(total: int | None, desc: str, unit: str = "it", enabled: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar with rate and ETA; disabled by ``enabled=False`` or ``DISTILL_PROGRESS=0``."""
    disabled = not enabled or os.environ.get("DISTILL_PROGRESS", "1") == "0"
    return tqdm(total=total, desc=desc, unit=unit, disable=disabled, file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5, smoothing=0.1, **kwargs)


def human_count(n: float) -> str:
    """1234567 -> '1.23M' (token counts in bars and tables)."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:.0f}" if float(n).is_integer() else f"{n:.3g}"


def show_table(title: str, rows: Iterable[Sequence[Any]], header: Sequence[str] | None = None) -> None:
    """Print a small summary table to stderr (rich, plain text when not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=header is not None, title_justify="left")
    rows = [list(map(str, r)) for r in rows]
    width = len(header) if header else max((len(r) for r in rows), default=2)
    for i in range(width):
        table.add_column(header[i] if header else "", justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    Console(file=sys.stderr, width=120).print(table)
