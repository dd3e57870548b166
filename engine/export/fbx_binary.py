"""Binary FBX 7.4 records: a tiny node tree, its writer and a bounded reader (no SDK).

A record is ``u32 EndOffset, u32 NumProperties, u32 PropertyListLen, u8 NameLen, name``,
its properties, its children and, when it has children, a 13-byte NULL record. Properties are
typed by one letter: C Y I L F D (scalars), S R (u32 length + bytes), f d l i b (arrays:
count, encoding 0 raw / 1 zlib, byte length, data).
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

MAGIC = b"Kaydara FBX Binary  \x00\x1a\x00"
VERSION = 7400
FOOTER_ID = bytes.fromhex("fabcab09d0c8d466b176fb831cf7267e")
FOOTER_MAGIC = bytes.fromhex("f85a8c6adef5d97eece90ce3758f290b")
FILE_ID = bytes.fromhex("28b32aebb624ccc2bfc8b02aa92bfcf1")
CREATION_TIME = "1970-01-01 10:00:00:000"
_ARRAY = {"f": np.dtype("<f4"), "d": np.dtype("<f8"), "l": np.dtype("<i8"), "i": np.dtype("<i4"), "b": np.dtype("u1")}
_SCALAR = {"C": "<B", "Y": "<h", "I": "<i", "L": "<q", "F": "<f", "D": "<d"}
_COMPRESS_ABOVE = 2048  # bytes; smaller arrays are written raw


@dataclass
class Node:
    """One FBX record: a name, typed properties ``[(code, value), ...]`` and children."""

    name: str
    props: list = field(default_factory=list)
    children: list = field(default_factory=list)

    def add(self, name: str, *props, children=None) -> "Node":
        """Append a child built from (code, value) pairs and return it."""
        n = Node(name, list(props), children or [])
        self.children.append(n)
        return n

    def find(self, name: str) -> "Node | None":
        for c in self.children:
            if c.name == name:
                return c
        return None

    def find_all(self, name: str) -> list["Node"]:
        return [c for c in self.children if c.name == name]

    def value(self, i: int = 0):
        return self.props[i][1]


# --- writing ---------------------------------------------------------------------------------
def _prop_bytes(code: str, value) -> bytes:
    if code in _SCALAR:
        return code.encode() + struct.pack(_SCALAR[code], value)
    if code in "SR":
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        return code.encode() + struct.pack("<I", len(raw)) + raw
    if code in _ARRAY:
        arr = np.ascontiguousarray(value, dtype=_ARRAY[code])
        data = arr.tobytes()
        encoding = 0
        if len(data) > _COMPRESS_ABOVE:
            data, encoding = zlib.compress(data, 1), 1
        return code.encode() + struct.pack("<III", arr.size, encoding, len(data)) + data
    raise ValueError(f"unknown FBX property type {code!r}")


def _write_node(out: bytearray, node: Node) -> None:
    start = len(out)
    props = b"".join(_prop_bytes(c, v) for c, v in node.props)
    name = node.name.encode("ascii")
    out += struct.pack("<IIIB", 0, len(node.props), len(props), len(name)) + name + props
    if node.children:
        for child in node.children:
            _write_node(out, child)
        out += b"\x00" * 13
    struct.pack_into("<I", out, start, len(out))


def write_document(top: list[Node]) -> bytes:
    """The whole file: header, top-level records, NULL record, footer."""
    out = bytearray(MAGIC + struct.pack("<I", VERSION))
    for node in top:
        _write_node(out, node)
    out += b"\x00" * 13
    out += FOOTER_ID + b"\x00" * 4
    out += b"\x00" * (16 - len(out) % 16)  # a full 16 bytes when already aligned
    out += struct.pack("<I", VERSION) + b"\x00" * 120 + FOOTER_MAGIC
    return bytes(out)


# --- reading (bounded: every length is checked against the bytes that exist) ----------------
class FbxParseError(ValueError):
    """The bytes are not a well-formed binary FBX; the message says where and what."""


def read_document(data: bytes, max_array_elements: int = 50_000_000) -> list[Node]:
    """Parse a binary FBX 7.x file into top-level nodes. Raises FbxParseError on any defect."""
    if len(data) < 27 or data[:23] != MAGIC:
        raise FbxParseError("not a binary FBX file (the 23-byte 'Kaydara FBX Binary' header is missing)")
    version = struct.unpack_from("<I", data, 23)[0]
    if not 7000 <= version < 8000:
        raise FbxParseError(f"unsupported FBX version {version}; expected 7000..7999")
    wide = version >= 7500
    head = struct.Struct("<QQQB" if wide else "<IIIB")
    null_len = 25 if wide else 13
    total = len(data)

    def parse_prop(pos: int, end: int):
        if pos >= end:
            raise FbxParseError(f"property list runs past its record at byte {pos}")
        code = chr(data[pos])
        pos += 1
        if code in _SCALAR:
            size = struct.calcsize(_SCALAR[code])
            if pos + size > end:
                raise FbxParseError(f"truncated {code} property at byte {pos}")
            return (code, struct.unpack_from(_SCALAR[code], data, pos)[0]), pos + size
        if code in "SR":
            if pos + 4 > end:
                raise FbxParseError(f"truncated string length at byte {pos}")
            n = struct.unpack_from("<I", data, pos)[0]
            if pos + 4 + n > end:
                raise FbxParseError(f"string of {n} bytes at byte {pos} runs past its record")
            raw = data[pos + 4:pos + 4 + n]
            return (code, raw.decode("utf-8", "replace") if code == "S" else bytes(raw)), pos + 4 + n
        if code in _ARRAY:
            if pos + 12 > end:
                raise FbxParseError(f"truncated array header at byte {pos}")
            count, enc, blen = struct.unpack_from("<III", data, pos)
            pos += 12
            if pos + blen > end:
                raise FbxParseError(f"array of {blen} bytes at byte {pos} runs past its record")
            dt = _ARRAY[code]
            if count > max_array_elements:
                raise FbxParseError(f"array of {count} elements at byte {pos} exceeds {max_array_elements}")
            raw = data[pos:pos + blen]
            if enc == 1:
                d = zlib.decompressobj()
                try:
                    raw = d.decompress(raw, count * dt.itemsize + 1)
                except zlib.error as e:
                    raise FbxParseError(f"corrupt compressed array at byte {pos} ({e})") from None
            elif enc != 0:
                raise FbxParseError(f"unknown array encoding {enc} at byte {pos}")
            if len(raw) != count * dt.itemsize:
                raise FbxParseError(f"array at byte {pos} holds {len(raw)} bytes; {count} x {dt.itemsize} expected")
            return (code, np.frombuffer(raw, dt).copy()), pos + blen
        raise FbxParseError(f"unknown property type {code!r} at byte {pos - 1}")

    def parse_node(pos: int, limit: int, depth: int):
        if depth > 64:
            raise FbxParseError(f"records nested deeper than 64 at byte {pos}")
        if pos + head.size > limit:
            raise FbxParseError(f"truncated record header at byte {pos}")
        end, nprops, plen, nlen = head.unpack_from(data, pos)
        if end == 0 and nprops == 0 and plen == 0 and nlen == 0:
            return None, pos + null_len
        p = pos + head.size
        if end <= p or end > limit or p + nlen + plen > end:
            raise FbxParseError(f"record at byte {pos} has an end offset {end} outside its parent (..{limit})")
        name = data[p:p + nlen].decode("ascii", "replace")
        p += nlen
        pend = p + plen
        props = []
        for _ in range(nprops):
            prop, p = parse_prop(p, pend)
            props.append(prop)
        if p != pend:
            raise FbxParseError(f"record {name!r} at byte {pos}: property list length does not match")
        node = Node(name, props)
        while p < end:
            if end - p == null_len and data[p:end] == b"\x00" * null_len:
                p = end
                break
            child, p = parse_node(p, end, depth + 1)
            if child is None:
                raise FbxParseError(f"record {name!r} at byte {pos}: NULL record before its end")
            node.children.append(child)
        return node, end

    nodes, pos = [], 27
    while True:
        if pos + null_len > total:
            raise FbxParseError("file ends before the top-level NULL record (truncated?)")
        node, pos = parse_node(pos, total, 0)
        if node is None:
            break
        nodes.append(node)
    if data[pos:pos + 16] != FOOTER_ID or FOOTER_MAGIC not in data[pos:]:
        raise FbxParseError("the FBX footer is missing or damaged (truncated file?)")
    return nodes
