"""What every picture command shares: matplotlib on the file-only backend, and writing the PNG."""
from __future__ import annotations

import sys
from pathlib import Path


def pyplot(command: str):
    """matplotlib.pyplot on the Agg backend (no display needed), or exit naming the extra to install."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit(f'{command}: matplotlib is missing: pip install -e ".[plots]"')
    return plt


def save(fig, out: str | Path, dpi: int = 120, tight: bool = True) -> Path:
    """Write `fig` to `out` (its folder made if needed), close it and return the path."""
    import matplotlib.pyplot as plt

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out
