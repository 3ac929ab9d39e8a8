# SPDX-License-Identifier: Apache-2.0
"""A small PNG writer (8-bit RGB, zlib from the standard library) and the level-map picture,
so saving a picture needs neither matplotlib nor Pillow."""

import struct
import zlib

import numpy as np

# Level -> colour, as the `clpsa run --png` picture: finer levels darker, skipped light grey.
LEVEL_COLOURS = {
    0: (224, 224, 224),
    1: (68, 1, 84),
    2: (49, 104, 142),
    4: (53, 183, 121),
    8: (253, 231, 37),
}
_BACKGROUND = (255, 255, 255)


def _chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def write_png(path, rgb):
    """Writes an RGB image, a uint8 array [height, width, 3], to path as PNG."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"write_png: expected a [height, width, 3] image, got {rgb.shape}")
    height, width = rgb.shape[:2]
    # Every scanline starts with filter type 0 (none).
    raw = np.zeros((height, 1 + 3 * width), dtype=np.uint8)
    raw[:, 1:] = rgb.reshape(height, 3 * width)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(raw.tobytes(), 9)) + _chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(data)


def level_map_image(levels, batch=0, cell=None, gap=4, per_row=8):
    """The picture of one batch entry of a level map [B, H, nq, nk] as an RGB array: one panel
    per head (up to per_row across), query blocks down, key blocks across, each block a square
    of cell pixels (default: 2 to 16, by the map's size) in its level's colour."""
    levels = np.asarray(levels)
    if levels.ndim != 4:
        raise ValueError(f"level map of shape {levels.shape}: expected [B, H, nq, nk]")
    maps = levels[batch]
    heads, nq, nk = maps.shape
    bad = ~np.isin(maps, list(LEVEL_COLOURS))
    if bad.any():
        raise ValueError(f"level map holds {maps[bad][0]}: levels are 0, 1, 2, 4, 8")
    if cell is None:
        cell = int(max(2, min(16, 256 // max(nq, nk))))
    cols = min(heads, per_row)
    rows = -(-heads // cols)
    height = gap + rows * (nq * cell + gap)
    width = gap + cols * (nk * cell + gap)
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = _BACKGROUND
    palette = np.zeros((9, 3), dtype=np.uint8)
    for level, colour in LEVEL_COLOURS.items():
        palette[level] = colour
    for h in range(heads):
        panel = palette[maps[h]].repeat(cell, axis=0).repeat(cell, axis=1)
        y = gap + (h // cols) * (nq * cell + gap)
        x = gap + (h % cols) * (nk * cell + gap)
        image[y:y + nq * cell, x:x + nk * cell] = panel
    return image


def level_map_png(path, levels, batch=0, cell=None):
    """Saves the level-map picture (level_map_image) of levels [B, H, nq, nk] as a PNG."""
    write_png(path, level_map_image(levels, batch=batch, cell=cell))
