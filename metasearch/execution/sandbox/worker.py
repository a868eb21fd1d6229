"""The sandbox worker: runs one candidate's tasks inside the jail.

Started by the host as ``python -I -S -B -c <bootstrap>`` (see
``launch.bootstrap_source``) with the RPC socket on an inherited file
descriptor; stdout and stderr are *not* the channel. It sets its own rlimits
(and, in ``unshare`` mode, installs the seccomp filter) before it reads any
agent code, says ``hello``, receives ``init`` (code, settings, tasks as
``[index, question]`` — never the gold answers), loads the agent with the
runtime's ``load_agent`` and an :class:`RPCTransport`, and runs the tasks on
``settings.threads`` threads, sending one ``result`` per task.
The socket is not inheritable, so ``run_python``'s children (started from
here, inside the same jail) never hold it.

Everything here runs next to hostile code, so nothing here is trusted by the
host: the host validates every message it receives.
"""

from __future__ import annotations

import io
import json
import os
import queue
import resource
import socket
import sys
import threading
import time
import traceback
from typing import Any

from metasearch.execution.sandbox.protocol import encode, recv_frame

_RLIMITS = {
    "cpu_s": resource.RLIMIT_CPU,
    "memory_bytes": resource.RLIMIT_AS,
    "file_size_bytes": resource.RLIMIT_FSIZE,
    "nproc": resource.RLIMIT_NPROC,
    "nofile": resource.RLIMIT_NOFILE,
    "core": resource.RLIMIT_CORE,
}


def apply_rlimits(limits: dict[str, int | None]) -> None:
    for key, which in _RLIMITS.items():
        value = limits.get(key)
        if value is not None:
            # CPU: SIGXCPU at the soft limit (reported as such), SIGKILL a second later.
            hard = int(value) + 1 if which == resource.RLIMIT_CPU else int(value)
            resource.setrlimit(which, (int(value), hard))


class Channel:
    """The worker's end of the socket: framed sends under a lock, replies routed by id."""

    def __init__(self, sock: socket.socket, max_bytes: int) -> None:
        self.sock = sock
        self.max_bytes = max_bytes
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._next = 0
        self._waiting: dict[int, list[Any]] = {}
        self._closed = False
        self._local = threading.local()  # each thread's last call id (for the host's trace)

    def last_rid(self) -> int | None:
        return getattr(self._local, "rid", None)

    def forget_last(self) -> None:
        self._local.rid = None

    def send(self, msg: dict[str, Any]) -> None:
        data = encode(msg)
        with self._send_lock:
            self.sock.sendall(data)

    def call(self, msg: dict[str, Any]) -> dict[str, Any]:
        event = threading.Event()
        with self._lock:
            if self._closed:
                raise ConnectionError("the sandbox host closed the channel")
            self._next += 1
            rid = self._next
            slot: list[Any] = [event, None]
            self._waiting[rid] = slot
        self._local.rid = rid
        self.send({**msg, "rid": rid})
        event.wait()
        reply = slot[1]
        if reply is None:
            raise ConnectionError("the sandbox host closed the channel")
        return reply

    def receive_forever(self) -> None:
        try:
            while True:
                msg = recv_frame(self.sock, self.max_bytes)
                if msg is None or msg.get("op") == "shutdown":
                    break
                if msg.get("op") == "llm_result":
                    with self._lock:
                        slot = self._waiting.pop(msg.get("rid"), None)
                    if slot is not None:
                        slot[1] = msg
                        slot[0].set()
        except Exception:
            pass
        finally:
            with self._lock:
                self._closed = True
                slots, self._waiting = list(self._waiting.values()), {}
            for slot in slots:
                slot[0].set()
        os._exit(0)  # the host is gone or asked us to stop


class RPCTransport:
    """The ``Transport`` agent code gets in the sandbox: every call goes to the host."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def complete(self, request: Any) -> Any:
        return self.complete_traced(request, {})

    def complete_traced(self, request: Any, tag: dict[str, Any]) -> Any:
        """One call; ``tag`` (task, agent, repair) labels it in the host's trace."""
        from metasearch.llm.types import LLMResponse

        trace = {"task": tag.get("task"), "agent": str(tag.get("agent") or "")[:200],
                 "repair": bool(tag.get("repair"))}
        reply = self._channel.call({"op": "llm", "request": request.to_json(), "trace": trace})
        if reply.get("ok"):
            return LLMResponse.from_json(reply["response"])
        raise _llm_error(reply.get("error") or {})

    def note(self, event: str, *, candidate: str | None = None, n: int = 1) -> None:
        self._channel.send({"op": "note", "event": event, "n": n, "rid": self._channel.last_rid()})


def _llm_error(err: dict[str, Any]) -> Exception:
    from metasearch.llm import types as llm_types

    name, message = str(err.get("type", "LLMError")), str(err.get("message", ""))
    if name == "BudgetExceeded":
        return llm_types.BudgetExceeded(message, cap=str(err.get("cap", "")))
    cls = getattr(llm_types, name, None)
    if isinstance(cls, type) and issubclass(cls, llm_types.LLMError):
        return cls(message)
    return llm_types.LLMError(f"{name}: {message}")


class _Capture(io.TextIOBase):
    """A stdout/stderr stand-in: each task thread writes to its own capped buffer.

    Writes from threads outside any task go to the real stream (the host
    drains it with its own cap).
    """

    def __init__(self, real: Any, local: threading.local) -> None:
        self._real = real
        self._local = local

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        buf = getattr(self._local, "buf", None)
        if buf is None:
            try:
                return self._real.write(s)
            except Exception:
                return len(s)
        room = self._local.cap - buf.tell()
        if len(s) > room:
            self._local.overflow = True
            s = s[:max(room, 0)]
        buf.write(s)
        return len(s)

    def flush(self) -> None:
        try:
            self._real.flush()
        except Exception:
            pass


def _trim(text: str, cap: int) -> tuple[str, bool]:
    return (text, False) if len(text) <= cap else (text[:cap], True)


def _run_one(agent: Any, channel: Channel, index: int, question: str,
             caps: dict[str, int], local: threading.local) -> None:
    channel.send({"op": "start", "index": index})
    channel.forget_last()
    local.buf, local.cap, local.overflow = io.StringIO(), caps["max_output_chars"], False
    start = time.monotonic()
    answer: str | None = None
    error: dict[str, Any] | None = None
    truncated = False
    try:
        if hasattr(agent, "run_task"):
            outcome = agent.run_task(str(index), question)
            answer, truncated = outcome.answer, outcome.truncated
            if outcome.error is not None:
                e = outcome.error
                error = {"kind": e.kind, "type": e.type, "message": e.message,
                         "traceback": e.traceback}
        else:
            answer = agent(question)
    except BaseException as e:  # noqa: B036 - the agent may raise anything, even SystemExit
        error = {"kind": "exception", "type": type(e).__name__, "message": str(e)[:2000],
                 "traceback": "".join(traceback.format_exception(e))[-3000:]}
    output = local.buf.getvalue()
    overflow = local.overflow
    local.buf = None
    if answer is not None and not isinstance(answer, str):
        answer = str(answer)
    if answer is not None:
        answer, cut = _trim(answer, caps["max_answer_chars"])
        truncated = truncated or cut
    if error is not None:
        error["message"], _ = _trim(str(error.get("message", "")), caps["max_error_chars"])
        error["traceback"], _ = _trim(str(error.get("traceback", "")), caps["max_error_chars"])
    channel.send({"op": "result", "index": index, "answer": answer, "error": error,
                  "wall_s": time.monotonic() - start, "truncated": truncated or overflow,
                  "output": output})


def _install_seccomp() -> None:
    """The syscall filter, before any agent code; a worker that cannot have it stops."""
    # imported here: ctypes costs start-up time that bwrap workers need not pay
    from metasearch.execution.sandbox.seccomp import install

    try:
        install()
    except OSError as e:
        print(f"metasearch worker: cannot install the seccomp filter: {e}", file=sys.stderr)
        os._exit(3)


def main(argv: list[str]) -> None:
    fd, limits = int(argv[0]), json.loads(argv[1])
    if limits.get("seccomp"):  # unshare mode; bwrap loads the filter itself
        _install_seccomp()
    apply_rlimits(limits)
    from metasearch.runtime.loader import load_agent  # before hello: proves the runtime loads

    os.set_inheritable(fd, False)  # run_python's children must never get the RPC socket
    sock = socket.socket(fileno=fd)
    channel = Channel(sock, int(limits.get("max_message_bytes") or 1 << 22))
    channel.send({"op": "hello", "pid": os.getpid(), "uid": os.getuid()})
    init = recv_frame(sock, channel.max_bytes)
    if init is None or init.get("op") != "init":
        os._exit(2)
    threading.Thread(target=channel.receive_forever, name="rpc", daemon=True).start()

    from metasearch.runtime.settings import AgentSettings

    settings = AgentSettings.from_json(init["settings"])
    caps = {k: int(init[k]) for k in ("max_answer_chars", "max_output_chars", "max_error_chars")}
    local = threading.local()
    sys.stdout = _Capture(sys.stdout, local)
    sys.stderr = _Capture(sys.stderr, local)
    try:
        agent = load_agent(init["code"], settings, RPCTransport(channel), sandboxed=True)
    except BaseException as e:  # noqa: B036 - the top level of agent code may raise anything
        channel.send({"op": "load_error", "type": type(e).__name__,
                      "message": _trim(str(e), caps["max_error_chars"])[0]})
        os._exit(0)
    channel.send({"op": "loaded"})
    work: queue.SimpleQueue[tuple[int, str]] = queue.SimpleQueue()
    for index, question in init["tasks"]:
        work.put((index, question))

    def loop() -> None:
        while True:
            try:
                index, question = work.get_nowait()
            except queue.Empty:
                return
            _run_one(agent, channel, index, question, caps, local)

    # Plain threads, not concurrent.futures: it imports logging and costs start-up time.
    threads = [threading.Thread(target=loop, name=f"task-{n}", daemon=True)
               for n in range(max(1, min(settings.threads, len(init["tasks"]))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
