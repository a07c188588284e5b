"""Import files for the reading, validation and export tests: streams as storage gives them."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

from app.products.transfer.reading import read_rows
from app.products.transfer.rows import RawRow
from app.uploads.checks import CSV, JSON


class Trickle:
    """A stream that answers every read with at most ``step`` bytes (a slow network, say),
    so that every boundary (a BOM, a UTF-8 sequence, a CRLF) falls between two reads."""

    def __init__(self, data: bytes, step: int = 1) -> None:
        self._data = io.BytesIO(data)
        self._step = step

    def read(self, size: int = -1, /) -> bytes:
        return self._data.read(self._step if size < 0 else min(size, self._step))


class Generated:
    """A stream over generated chunks: the file is never in memory whole."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def read(self, size: int = -1, /) -> bytes:
        wanted = size if size >= 0 else 64 * 1024
        while len(self._pending) < wanted:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._pending += chunk
        data, self._pending = self._pending[:wanted], self._pending[wanted:]
        return data


def csv_rows(text: str | bytes, *, step: int | None = None) -> list[RawRow]:
    data = text.encode() if isinstance(text, str) else text
    stream = Trickle(data, step) if step else io.BytesIO(data)
    return list(read_rows(stream, content_type=CSV))


def json_rows(text: str | bytes) -> list[RawRow]:
    data = text.encode() if isinstance(text, str) else text
    return list(read_rows(io.BytesIO(data), content_type=JSON))


def generated_csv(count: int) -> Iterator[bytes]:
    """A CSV of ``count`` products, generated 1,000 rows at a time."""
    yield b"sku,name,description,price,stock,categories,is_active\r\n"
    for start in range(0, count, 1000):
        yield "".join(
            f'SKU-{i:06d},Product {i},"A description, with a comma ""and quotes""",{i % 100}.99,{i % 7},'
            f"kitchen|sale,true\r\n"
            for i in range(start, min(start + 1000, count))
        ).encode()


def generated_json(count: int) -> Iterator[bytes]:
    yield b"["
    for start in range(0, count, 1000):
        yield ",".join(
            f'{{"sku": "SKU-{i:06d}", "name": "Product {i}", "description": "A description, with \\"quotes\\"",'
            f' "price": "{i % 100}.99", "stock": {i % 7}, "categories": ["kitchen", "sale"]}}'
            for i in range(start, min(start + 1000, count))
        ).encode() + (b"," if start + 1000 < count else b"")
    yield b"]"
