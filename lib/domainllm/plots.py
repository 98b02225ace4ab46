"""Figures for reports: headless, and byte-identical for identical data."""

from __future__ import annotations

import io
from typing import Any


def subplots(*args: Any, **kwargs: Any):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def to_png(fig: Any, dpi: int = 80) -> bytes:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    # No software/time metadata in the PNG, so reruns give identical bytes.
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
