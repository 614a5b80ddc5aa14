"""Shared plotting for the studies: accuracy versus time since programming (Joshi 2020,
Fig. 4 style: log time axis, mean line, band = std over chips) and atomic PNG saving."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend (works without a display)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def accuracy_vs_time(ax: Any, rows: Iterable[dict], methods: Iterable[str], fp32: float, *,
                     colors: dict[str, Any] | None = None,
                     style: Callable[[str], str] = lambda m: "-") -> list[float]:
    """Draw accuracy (%) vs time since programming of each method in ``methods`` on ``ax``.

    ``rows`` are result rows with ``method``, ``t_s``, ``mean``, ``std`` (fractions); the
    band is mean +- std over chips; a dotted line marks the FP32 baseline ``fp32``. Returns
    the lower band edges so a caller can zoom the y axis.
    """
    rows = [r for r in rows if r.get("t_s") is not None]
    lows: list[float] = []
    for method in methods:
        rs = sorted((r for r in rows if r["method"] == method), key=lambda r: r["t_s"])
        t = [r["t_s"] for r in rs]
        m = [100 * r["mean"] for r in rs]
        s = [100 * r["std"] for r in rs]
        lo = [a - b for a, b in zip(m, s, strict=True)]
        hi = [a + b for a, b in zip(m, s, strict=True)]
        color = colors.get(method) if colors else None
        line, = ax.plot(t, m, style(method), marker="o", ms=3, label=method, color=color)
        ax.fill_between(t, lo, hi, alpha=0.15, color=line.get_color())
        lows += lo
    ax.axhline(100 * fp32, color="k", ls=":", lw=1.2, label="fp32 (digital)")
    ax.set_xscale("log")
    ax.set_xlabel("time since programming (s)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    return lows


def save_figure(fig: Any, path: Path, dpi: int = 110) -> None:
    """Save ``fig`` to ``path`` atomically (temp file + rename) and close it."""
    plt = pyplot()
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    tmp.replace(path)
