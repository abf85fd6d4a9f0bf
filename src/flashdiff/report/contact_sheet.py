"""A contact sheet: sections of image columns (a clean image above its measurement), each column labelled.

The layout is fixed in pixels, so a sheet's size is known from its contents: width ``columns · tile``, height
``Σ_sections (HEADING_PX + LABEL_PX + 2 · tile)`` (``sheet_size``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from flashdiff.report.plots import plt

DPI = 100  # figure inches × DPI = pixels, exactly
HEADING_PX = 22  # a section's heading line
LABEL_PX = 40  # three label lines above each column
FONT_PT = 7
PAD_PX = 2  # blank margin inside each tile, so neighbouring images stay apart


@dataclass
class Section:
    """One band of the sheet: a heading and ``k`` columns, clean (k, 3, H, W) in [0, 1] over measured (k, 3, H, W)."""

    heading: str
    clean: Tensor
    measured: Tensor
    labels: Sequence[str]


def sheet_size(sections: Sequence[Section], tile: int) -> tuple[int, int]:
    """``(width, height)`` in pixels of the sheet of ``sections`` with square tiles of ``tile`` pixels."""
    columns = max((len(s.labels) for s in sections), default=0)
    return max(columns, 1) * tile, len(sections) * (HEADING_PX + LABEL_PX + 2 * tile)


def _show(fig, image: Tensor, left: float, top: float, tile: int, size: tuple[int, int]) -> None:
    """``image`` (3, H, W), clipped to [0, 1], in a ``tile``-pixel square whose top-left corner is (left, top) px."""
    width, height = size
    side = tile - 2 * PAD_PX
    ax = fig.add_axes(((left + PAD_PX) / width, 1.0 - (top + PAD_PX + side) / height, side / width, side / height))
    ax.imshow(image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())
    ax.set_axis_off()


def contact_sheet(path: str | Path, sections: Sequence[Section], *, tile: int = 128) -> Path:
    """Write the sheet of ``sections`` as PNG (through a temporary file and a rename); returns ``path``."""
    path = Path(path)
    width, height = sheet_size(sections, tile)
    fig = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    top = 0.0
    for section in sections:
        fig.text(4 / width, 1.0 - (top + HEADING_PX / 2) / height, section.heading, fontsize=FONT_PT + 1,
                 fontweight="bold", va="center", ha="left")
        top += HEADING_PX
        for j, (clean, measured, label) in enumerate(zip(section.clean, section.measured, section.labels)):
            fig.text((j + 0.5) * tile / width, 1.0 - (top + 2) / height, label, fontsize=FONT_PT, va="top",
                     ha="center", linespacing=1.1)
            _show(fig, clean, j * tile, top + LABEL_PX, tile, (width, height))
            _show(fig, measured, j * tile, top + LABEL_PX + tile, tile, (width, height))
        top += LABEL_PX + 2 * tile
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=DPI, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return path
