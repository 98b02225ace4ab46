"""Figures for reports: headless, and byte-identical for identical data.

Figures are made with `matplotlib.figure.Figure` and the Agg canvas, not pyplot: no global
figure registry to close, no GUI backend to pick, and half a second less to import (the
standalone `domainllm data` commands pay it once per run)."""

from __future__ import annotations

import io
from typing import Any


def subplots(nrows: int = 1, ncols: int = 1, **kwargs: Any):
    """(figure, axes) as `pyplot.subplots` returns them."""
    from matplotlib.figure import Figure

    figsize = kwargs.pop("figsize", None)
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def to_png(fig: Any, dpi: int = 80) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.tight_layout()
    buf = io.BytesIO()
    # No software/time metadata in the PNG, so reruns give identical bytes.
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()
