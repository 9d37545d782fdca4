"""A PNG decoder in pure Python (zlib + the five scanline filters), for asserting what a browser drew.

Only what screenshots use: 8-bit greyscale, RGB, grey+alpha or RGBA, not interlaced. Anything else is a
ValueError, so a test never silently reads a picture wrong.
"""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from dataclasses import dataclass

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    channels: int
    rows: list[bytes]  # height rows of width * channels bytes, filters undone

    def pixels(self) -> Counter[tuple[int, ...]]:
        """How many pixels have each colour (alpha dropped; greyscale as (v, v, v))."""
        out: Counter[tuple[int, ...]] = Counter()
        c = self.channels
        for row in self.rows:
            if c >= 3:
                out.update(zip(row[0::c], row[1::c], row[2::c], strict=True))
            else:
                out.update((v, v, v) for v in row[0::c])
        return out


def decode(data: bytes) -> Image:
    if not data.startswith(_SIGNATURE):
        raise ValueError("not a PNG file")
    at, idat, header = len(_SIGNATURE), bytearray(), None
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        if zlib.crc32(kind + body) != struct.unpack(">I", data[at + 8 + length:at + 12 + length])[0]:
            raise ValueError(f"bad CRC in chunk {kind!r}")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        at += 12 + length
    if header is None:
        raise ValueError("no IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in _CHANNELS or interlace:
        raise ValueError(f"unsupported PNG (bit depth {depth}, colour type {colour}, interlace {interlace})")
    channels = _CHANNELS[colour]
    raw = zlib.decompress(bytes(idat))
    stride = width * channels
    if len(raw) != height * (stride + 1):
        raise ValueError("image data has the wrong length")
    rows: list[bytes] = []
    previous = bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        row = _unfilter(raw[start], bytearray(raw[start + 1:start + 1 + stride]), previous, channels)
        rows.append(row)
        previous = row
    return Image(width, height, channels, rows)


def _unfilter(kind: int, cur: bytearray, prev: bytes, bpp: int) -> bytes:
    """Undo one scanline's filter (PNG spec 9.2): None, Sub, Up, Average, Paeth."""
    n = len(cur)
    if kind == 0:
        return bytes(cur)
    if kind == 2:
        return bytes((a + b) & 0xFF for a, b in zip(cur, prev, strict=True))
    if kind == 1:
        for i in range(bpp, n):
            cur[i] = (cur[i] + cur[i - bpp]) & 0xFF
    elif kind == 3:
        for i in range(n):
            left = cur[i - bpp] if i >= bpp else 0
            cur[i] = (cur[i] + ((left + prev[i]) >> 1)) & 0xFF
    elif kind == 4:
        for i in range(n):
            a = cur[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            cur[i] = (cur[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
    else:
        raise ValueError(f"unknown PNG filter type {kind}")
    return bytes(cur)
