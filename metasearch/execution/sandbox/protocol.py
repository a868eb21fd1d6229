"""The wire format between the host and a sandbox worker.

Each message is a 4-byte big-endian length followed by that many bytes of
UTF-8 JSON holding one object with an ``op`` field. Both ends refuse frames
longer than their cap. This module is imported by the worker, so it uses the
standard library only.

Worker → host: ``hello``, ``loaded``, ``load_error``, ``start``, ``result``,
``llm`` (with ``rid`` and ``request``), ``note``.
Host → worker: ``init`` (code, settings, tasks as ``[index, question]``),
``llm_result`` (``rid``, ``ok``, ``response`` or ``error``), ``shutdown``.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """The other end sent something that is not a valid frame."""


def encode(msg: dict[str, Any]) -> bytes:
    body = json.dumps(msg, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    return HEADER.pack(len(body)) + body


def decode(body: bytes) -> dict[str, Any]:
    try:
        msg = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise ProtocolError(f"malformed JSON frame ({type(e).__name__})") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("op"), str):
        raise ProtocolError("a frame is not an object with a string 'op'")
    return msg


class FrameBuffer:
    """Accumulates bytes and yields complete frames; refuses frames over ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buf += data
        out = []
        while len(self._buf) >= HEADER.size:
            (n,) = HEADER.unpack_from(self._buf)
            if n > self.max_bytes:
                raise ProtocolError(f"a frame of {n} bytes exceeds the cap of {self.max_bytes}")
            if len(self._buf) < HEADER.size + n:
                break
            body = bytes(self._buf[HEADER.size:HEADER.size + n])
            del self._buf[:HEADER.size + n]
            out.append(decode(body))
        return out


def recv_frame(sock: socket.socket, max_bytes: int) -> dict[str, Any] | None:
    """Blocking read of one frame; None on a clean EOF before any byte."""
    head = _recv_exact(sock, HEADER.size, allow_eof=True)
    if head is None:
        return None
    (n,) = HEADER.unpack(head)
    if n > max_bytes:
        raise ProtocolError(f"a frame of {n} bytes exceeds the cap of {max_bytes}")
    body = _recv_exact(sock, n, allow_eof=False)
    assert body is not None
    return decode(body)


def _recv_exact(sock: socket.socket, n: int, *, allow_eof: bool) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < n:
        data = sock.recv(n - len(chunks))
        if not data:
            if allow_eof and not chunks:
                return None
            raise ProtocolError("connection closed in the middle of a frame")
        chunks += data
    return bytes(chunks)
