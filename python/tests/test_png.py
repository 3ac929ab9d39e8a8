# SPDX-License-Identifier: Apache-2.0
"""The PNG writer and the level-map picture, decoded again with zlib."""

import struct
import zlib

import numpy as np
import pytest

import clpsa
from clpsa._png import LEVEL_COLOURS, level_map_image


def read_png(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + length
    width, height, depth, colour, _, _, _ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour) == (8, 2) and b"IEND" in chunks
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, -1)
    assert not raw[:, 0].any()  # filter type 0 on every line
    return raw[:, 1:].reshape(height, width, 3)


def test_png_round_trip(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    clpsa.write_png(tmp_path / "x.png", rgb)
    np.testing.assert_array_equal(read_png(tmp_path / "x.png"), rgb)
    with pytest.raises(ValueError):
        clpsa.write_png(tmp_path / "y.png", np.zeros((4, 4)))


def test_level_map_picture(tmp_path):
    levels = np.zeros((1, 2, 3, 4), np.int8)
    levels[0, 0, 1, 2] = 8
    levels[0, 1, 2, 3] = 1
    clpsa.level_map_png(tmp_path / "m.png", levels, cell=4)
    image = read_png(tmp_path / "m.png")
    np.testing.assert_array_equal(image, level_map_image(levels, cell=4))
    gap = 4
    assert image.shape == (gap + 3 * 4 + gap, gap + 2 * (4 * 4 + gap), 3)
    # Head 0, query block 1, key block 2 is yellow (level 8); head 1's (2, 3) dark (level 1).
    assert tuple(image[gap + 1 * 4 + 1, gap + 2 * 4 + 1]) == LEVEL_COLOURS[8]
    x1 = gap + 4 * 4 + gap
    assert tuple(image[gap + 2 * 4 + 2, x1 + 3 * 4 + 2]) == LEVEL_COLOURS[1]
    assert tuple(image[gap, gap]) == LEVEL_COLOURS[0]
    with pytest.raises(ValueError, match="levels are 0, 1, 2, 4, 8"):
        level_map_image(np.full((1, 1, 2, 2), 3, np.int8))
