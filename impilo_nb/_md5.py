"""MD5 (RFC 1321) of many short messages at once, in numpy: the engine behind ``external_ids``.

Each call of ``hashlib.md5`` from Python has a fixed cost far above the hashing of a short
message, so a million ids spend most of their time in calls. Nearly every id is hashed from one 64-byte MD5 block
(a message of at most 55 bytes: the block also holds the ``0x80`` end marker and the 8-byte
length), and MD5 is 64 steps of 32-bit adds, rotations and bit logic, which numpy can run over
a whole column of blocks at once: one ufunc call per operation for thousands of rows. Longer
messages (rare: an email and a phone number past 55 bytes together) take ``hashlib``, one by
one, so every message of any length gets its digest.

Measured choices (``bench/ids.py`` measures the whole of ``external_ids``):

- Rows go through the 64 steps in batches of ``BATCH_ROWS``: a batch's working arrays stay in
  the CPU cache, while each ufunc call is still long enough for its fixed cost not to matter
  (on the development machine 16,384 rows ran ~20% slower and 262,144 ~35% slower than 65,536).
- One thread. numpy releases the GIL inside each ufunc, but the id pipeline around the hashing
  (joining the strings, building the hex text) holds it: two threads, each on its own batches,
  were ~25% slower than one on the two-core development machine.
- No dependency beyond numpy: no compiler is needed and nothing is downloaded.

The tests compare every digest with ``hashlib`` (all lengths from 0 to past one block, and
random bytes), so this module is exact or the suite fails.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = ["BATCH_ROWS", "SINGLE_BLOCK_BYTES", "Pieces", "hexdigests"]

#: The longest message that fits one 64-byte block: 64 - 1 (the 0x80 marker) - 8 (the length).
SINGLE_BLOCK_BYTES = 55

#: Rows sent through MD5's 64 steps together (see the module docstring for the measurement).
BATCH_ROWS = 65_536

# RFC 1321, section 3.4: the sine table T[i] = floor(2**32 * abs(sin(i + 1))), the per-step
# left rotations, and which of the block's 16 words each step reads.
_SINES = [np.uint32(int(2**32 * abs(math.sin(step + 1)))) for step in range(64)]
_ROTATIONS = [7, 12, 17, 22] * 4 + [5, 9, 14, 20] * 4 + [4, 11, 16, 23] * 4 + [6, 10, 15, 21] * 4
_WORD_ORDER = [(step, 5 * step + 1, 3 * step + 5, 7 * step)[step // 16] % 16 for step in range(64)]
_INITIAL_STATE = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476)

#: Each byte value's two lowercase hex digits, as one uint16, so a lookup writes both at once.
_HEX_PAIRS = np.frombuffer(b"".join(b"%02x" % value for value in range(256)), dtype=np.uint16)

Bytes = npt.NDArray[np.uint8]
Counts = npt.NDArray[np.int64]


class Pieces(NamedTuple):
    """One piece of text per row, cut from one buffer: row ``i``'s piece is
    ``data[starts[i] : starts[i] + lengths[i]]``. Whatever lies between pieces (separators) is
    never read."""

    data: bytes | Bytes
    starts: Counts
    lengths: Counts

    @classmethod
    def back_to_back(cls, data: bytes | Bytes, lengths: Counts) -> Pieces:
        """Pieces stored one after the other, with nothing between them."""
        return cls(data, np.cumsum(lengths) - lengths, lengths)


def hexdigests(parts: Sequence[Pieces], rows: int) -> list[str]:
    """The MD5 hex digest of each of ``rows`` messages, as ``hashlib.md5(m).hexdigest()`` gives.

    Message ``i`` is the concatenation of every part's ``i``-th piece. (``external_ids`` passes
    the lower-cased emails and the phones' digits as two parts, so no row is put together in
    Python.)

    Raises:
        ValueError: a part does not have ``rows`` pieces, or a piece lies outside its data.
    """
    for number, (data, starts, lengths) in enumerate(parts):
        if len(starts) != rows or len(lengths) != rows:
            raise ValueError(f"part {number} has {len(starts)} starts and {len(lengths)} lengths for {rows} rows")
        if rows and (starts.min() < 0 or lengths.min() < 0 or (starts + lengths).max() > len(data)):
            raise ValueError(f"part {number} has a piece outside its {len(data)} bytes of data")
    if rows == 0:
        return []
    total = np.zeros(rows, dtype=np.int64)
    for part in parts:
        total += part.lengths
    single = total <= SINGLE_BLOCK_BYTES
    state = _compress(_padded_blocks(parts, total, single))
    digests = _hex_text(state.astype("<u4", copy=False).view(np.uint8))
    for row in np.flatnonzero(~single).tolist():
        message = b"".join(bytes(data[starts[row] : starts[row] + lengths[row]]) for data, starts, lengths in parts)
        digests[row] = hashlib.md5(message, usedforsecurity=False).hexdigest()
    return digests


def _padded_blocks(parts: Sequence[Pieces], total: Counts, single: npt.NDArray[np.bool_]) -> Bytes:
    """One padded 64-byte block per row (rows longer than one block are left as zeros).

    Each part is read through a sliding 56-byte window over its data: row ``i`` gets the
    window that puts the piece's first byte at the column where the part begins in that row
    (after the earlier parts' pieces), one gather for all rows. A bitwise select then keeps
    each cell from the part it belongs to, and cells past the message's end become 0.
    """
    rows, width = len(total), SINGLE_BLOCK_BYTES + 1
    columns = np.arange(width, dtype=np.uint8)
    begin = np.zeros(rows, dtype=np.int64)  # the column where each row's current part begins
    windows, ends = [], []
    for data, starts, lengths in parts:
        # width zero bytes either side keep every window inside the buffer
        buffer = np.zeros(len(data) + 2 * width, dtype=np.uint8)
        buffer[width : width + len(data)] = np.frombuffer(data, dtype=np.uint8)
        first = np.where(single, starts - begin + width, 0)
        windows.append(np.lib.stride_tricks.sliding_window_view(buffer, width)[first])
        begin = begin + lengths
        ends.append(np.where(single, begin, 0).astype(np.uint8)[:, None])
    message = windows[-1]
    for window, end in zip(windows[-2::-1], ends[-2::-1], strict=True):
        # message = window where the column is below end, else message; bitwise, as np.where is slower
        np.bitwise_xor(window, message, out=window)
        np.bitwise_and(window, _all_ones_below(columns, end), out=window)
        np.bitwise_xor(message, window, out=message)
    blocks = np.zeros((rows, 64), dtype=np.uint8)
    np.bitwise_and(message, _all_ones_below(columns, ends[-1]), out=blocks[:, :width])
    length = np.where(single, total, 0)
    blocks[np.arange(rows), length] = 0x80
    blocks.view("<u4")[:, 14] = (length * 8).astype(np.uint32)  # the length in bits; word 15 stays 0 below 2**29
    return blocks


def _all_ones_below(columns: Bytes, end: Bytes) -> Bytes:
    """A mask per row: 0xFF in the columns below the row's ``end``, 0 from there on."""
    return np.negative((columns < end).view(np.uint8))


def _compress(blocks: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint32]:
    """MD5's compression of one block per row from the initial state: the (rows, 4) state words."""
    words = np.ascontiguousarray(blocks.view("<u4").T, dtype=np.uint32)  # (16, rows): each word's values side by side
    state = np.empty((words.shape[1], 4), dtype=np.uint32)
    for begin in range(0, words.shape[1], BATCH_ROWS):
        batch = words[:, begin : begin + BATCH_ROWS]
        state[begin : begin + batch.shape[1]] = np.stack(_rounds(batch), axis=1)
    return state


def _rounds(words: npt.NDArray[np.uint32]) -> tuple[npt.NDArray[np.uint32], ...]:
    """The 64 steps of RFC 1321 section 3.4 over a batch, each operation in place on whole columns."""
    xor, and_, or_, add, invert = np.bitwise_xor, np.bitwise_and, np.bitwise_or, np.add, np.invert
    rows = words.shape[1]
    a, b, c, d = (np.full(rows, value, dtype=np.uint32) for value in _INITIAL_STATE)
    f, spare = np.empty(rows, dtype=np.uint32), np.empty(rows, dtype=np.uint32)
    for step in range(64):
        stage = step // 16
        # F, G, H, I of the RFC, each with one temporary: d ^ (b & (c ^ d)) is (b & c) | (~b & d).
        if stage == 0:
            xor(c, d, out=f)
            and_(b, f, out=f)
            xor(d, f, out=f)
        elif stage == 1:
            xor(b, c, out=f)
            and_(d, f, out=f)
            xor(c, f, out=f)
        elif stage == 2:
            xor(b, c, out=f)
            xor(d, f, out=f)
        else:
            invert(d, out=f)
            or_(b, f, out=f)
            xor(c, f, out=f)
        add(f, a, out=f)
        add(f, words[_WORD_ORDER[step]], out=f)
        add(f, _SINES[step], out=f)
        shift = _ROTATIONS[step]
        np.left_shift(f, shift, out=spare)
        np.right_shift(f, 32 - shift, out=f)
        or_(f, spare, out=f)
        add(f, b, out=f)
        a, b, c, d, f = d, f, b, c, a  # the old a's array becomes the next step's scratch
    for word, initial in zip((a, b, c, d), _INITIAL_STATE, strict=True):
        add(word, np.uint32(initial), out=word)
    return a, b, c, d


def _hex_text(digests: npt.NDArray[np.uint8]) -> list[str]:
    """(rows, 16) digest bytes -> one 32-character lowercase hex str per row.

    All rows become one ASCII text with a newline after each digest, split in one C call:
    about twice as fast as decoding each row's bytes into its own str.
    """
    rows = len(digests)
    text = np.empty((rows, 33), dtype=np.uint8)
    text[:, 32] = ord("\n")
    text[:, :32] = np.take(_HEX_PAIRS, digests.reshape(rows, 16)).view(np.uint8).reshape(rows, 32)
    lines = str(text.data.cast("B"), "ascii").split("\n")  # decoded in place, no copy to bytes
    lines.pop()  # the empty text after the last newline
    return lines
