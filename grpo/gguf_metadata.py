"""The key-value metadata of a GGUF file, read straight from its header.

gguf's GGUFReader builds a numpy view per element: Gemma's 262k-token vocabulary takes it ~15-25 s to
parse on our 2-core machines, and every GGUF export and first-use tokenizer conversion reads it. This
walks the same header layout (little-endian GGUF v2/v3: magic, version, tensor count, key-value count,
then key, type, value per pair) with struct over the file's bytes (~0.5 s). tests/test_export.py checks
it against GGUFReader, key for key, on an exported file; tests/test_gguf_metadata.py its errors.
"""

import mmap
import struct

GGUF_MAGIC = b"GGUF"
# GGUFValueType: scalar struct formats (gguf.constants)
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


class GGUFMetadataError(ValueError):
    pass


def read_gguf_metadata(path) -> dict[str, object]:
    """Every key-value pair of the file: scalars as Python numbers, strings as str, arrays as lists.
    A file that is not GGUF, or whose header is cut short or damaged, raises GGUFMetadataError naming it."""
    with open(path, "rb") as handle:
        header = handle.read(4)
        if header != GGUF_MAGIC:
            raise GGUFMetadataError(f"{path}: not a GGUF file (first bytes {header!r}, expected {GGUF_MAGIC!r})")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            try:
                return _read_pairs(path, data)
            except (struct.error, UnicodeDecodeError, ValueError) as error:
                raise GGUFMetadataError(f"{path}: GGUF header cut short or damaged ({error}); export or "
                                        "download the file again") from error


def _read_pairs(path, data) -> dict[str, object]:
    version, _tensor_count, kv_count = struct.unpack_from("<IQQ", data, 4)
    if version not in (2, 3):
        raise GGUFMetadataError(f"{path}: GGUF version {version}; this reader knows versions 2 and 3")
    reader = _Reader(data, 24)
    metadata = {}
    for _ in range(kv_count):
        key = reader.string()
        metadata[key] = reader.value(reader.scalar("I"))
    return metadata


class _Reader:
    def __init__(self, data, offset: int):
        self.data, self.offset = data, offset

    def scalar(self, fmt: str):
        (value,) = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        length = self.scalar("Q")
        start = self.offset
        self.offset += length
        if self.offset > len(self.data):
            raise ValueError(f"a string of {length} bytes at byte {start} runs past the end of the file")
        return self.data[start:self.offset].decode("utf-8")

    def value(self, value_type: int):
        if value_type == _STRING:
            return self.string()
        if value_type == _ARRAY:
            element_type, count = self.scalar("I"), self.scalar("Q")
            if element_type in _SCALARS:  # one unpack for the whole array
                fmt = f"<{count}{_SCALARS[element_type]}"
                values = list(struct.unpack_from(fmt, self.data, self.offset))
                self.offset += struct.calcsize(fmt)
                return values
            return [self.value(element_type) for _ in range(count)]
        if value_type in _SCALARS:
            return self.scalar(_SCALARS[value_type])
        raise GGUFMetadataError(f"unknown GGUF value type {value_type} at byte {self.offset}")
