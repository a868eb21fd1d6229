"""The hostile corpus: every agent in tests/hostile/ is (a) refused by validation at the
line its header names and (b) contained by the sandbox when validation is skipped.

The ``python_*`` agents are valid agents whose hostility is in the program they hand to
``run_python`` (which no validation sees): their header says ``# validate: ok``, and the
sandbox plus the tool's own limits must contain them.

Each file's header says what to expect::

    # validate: <finding code> line <n> | ok
    # sandbox: blocked | any | truncated | kind=<k>[|<k>...] | answer=<text> | contains=<text>
    # needs: seccomp        (optional: skipped, with the reason, where the filter is unavailable)

``@@NAME@@`` placeholders are filled in per test (ports, paths, a token). Every
sandbox run also checks, whatever the header says: the host is alive, no
process of the sandbox uids (as an ordinary user: of any jail's pid namespace) is left, no secret from the host's environment
appears in any outcome, output or log, nothing appeared or changed outside the
worker's scratch dir, the loopback listeners saw nothing, and every call that
reached the gateway is labelled role=task with this candidate, the run's model
and capped max_tokens, within the budget.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
import uuid
from pathlib import Path

import pytest

from metasearch.candidate.validate import validate_code
from metasearch.execution.sandbox import SandboxLimits, SandboxRunner
from metasearch.execution.sandbox.launch import probe
from metasearch.execution.sandbox.seccomp import seccomp_available
from metasearch.llm import Budget, BudgetSettings, scripted_gateway
from metasearch.runtime.settings import AgentSettings
from metasearch.suites.task import Task

HOSTILE = Path(__file__).parent / "hostile"
FILES = sorted(p for p in HOSTILE.glob("*.py") if not p.name.startswith("_"))
UIDS = range(61000, 61032)
MODEL = "scripted/test"
CANDIDATE = "cand-hostile"
MAX_CALLS = 6
CALL_THREADS = 2
PACKAGE_DIR = Path(__file__).resolve().parents[1] / "metasearch"
SLOW = {"infinite_loop", "sleep_past_timeout", "cpu_burn_threads", "fork_bomb", "thread_bomb",
        "stdout_flood", "rpc_malformed", "rpc_oversized", "rpc_call_flood", "deep_recursion"}


def header(path: Path) -> tuple[str, int, str]:
    """(finding code, line, sandbox expectation); the code ``ok`` means validation passes."""
    text = path.read_text()
    v = re.search(r"^# validate: (?:(\S+) line (\d+)|(ok))$", text, re.M)
    s = re.search(r"^# sandbox: (.+)$", text, re.M)
    assert v and s, f"{path.name}: header lines '# validate:' and '# sandbox:' are required"
    if v.group(3):
        return "ok", 0, s.group(1).strip()
    return v.group(1), int(v.group(2)), s.group(1).strip()


def test_corpus_is_large_enough() -> None:
    assert len(FILES) >= 25
    assert len([p for p in FILES if p.stem.startswith("python_")]) >= 5


@pytest.fixture()
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The host-side scene: secrets, listeners, planted files, watched directories."""
    secret = f"sk-test-SECRET-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text(f"-----FAKE KEY {secret}-----")
    os.chmod(home / ".ssh" / "id_rsa", 0o644)
    monkeypatch.setenv("HOME", str(home))
    scratch_root = tmp_path / "scratch"
    other = scratch_root / "cand-other"
    other.mkdir(parents=True)
    (other / "notes.txt").write_text(f"other candidate's notes {secret}")
    os.chmod(other, 0o755)
    os.chmod(other / "notes.txt", 0o644)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.chmod(outside, 0o777)
    os.chmod(tmp_path, 0o755)

    tcp = socket.create_server(("127.0.0.1", 0))
    tcp.settimeout(0.2)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.2)
    seen: list[str] = []
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            try:
                conn, _ = tcp.accept()
                seen.append("tcp")
                conn.close()
            except OSError:
                pass
            try:
                udp.recvfrom(100)
                seen.append("udp")
            except OSError:
                pass

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    token = uuid.uuid4().hex[:10]
    subs = {"PORT": str(tcp.getsockname()[1]), "UDP_PORT": str(udp.getsockname()[1]),
            "SSH_DIR": str(home / ".ssh"), "SCRATCH_ROOT": str(scratch_root),
            "OTHER_SCRATCH": str(other), "OUTSIDE_DIR": str(outside), "TOKEN": token,
            "PKG_DIR": str(PACKAGE_DIR), "MODEL": MODEL}
    host_paths = [Path(f"/tmp/pwned-{token}"), Path(f"/dev/shm/pwned-{token}"),
                  Path(f"/var/tmp/pwned-{token}"), PACKAGE_DIR / f"pwned_{token}.py"]
    yield {"secret": secret, "subs": subs, "scratch_root": scratch_root, "outside": outside,
           "host_paths": host_paths, "seen": seen, "other": other, "home": home}
    stop.set()
    t.join(timeout=2)
    tcp.close()
    udp.close()
    for p in host_paths:
        p.unlink(missing_ok=True)


def fill(path: Path, subs: dict[str, str]) -> str:
    return re.sub(r"@@(\w+)@@", lambda m: subs[m.group(1)], path.read_text())


def ids(files: list[Path]) -> list[str]:
    return [p.stem for p in files]


@pytest.mark.parametrize("path", FILES, ids=ids(FILES))
def test_validation_refuses(path: Path, world) -> None:
    code, line, _ = header(path)
    findings = validate_code(fill(path, world["subs"]))
    if code == "ok":  # a valid agent: its hostility is in the program it runs
        assert findings == [], "; ".join(f"{f.code}@{f.line}" for f in findings)
        return
    assert any(f.code == code and f.line == line for f in findings), (
        f"expected a {code} finding at line {line}; got "
        + "; ".join(f"{f.code}@{f.line}" for f in findings))


def _sandbox_uid_processes() -> list[int]:
    """Processes of the sandbox uids (root), or ours in another pid namespace (rootless)."""
    rootless, me, mine = os.geteuid() != 0, os.geteuid(), os.readlink("/proc/self/ns/pid")
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                uid = os.stat(f"/proc/{d}").st_uid
                jailed = (rootless and uid == me and os.readlink(f"/proc/{d}/ns/pid") != mine
                          and not _zombie(d))
            except OSError:
                continue
            if uid in UIDS or jailed:
                pids.append(int(d))
    return pids


def _zombie(pid: str) -> bool:
    """A zombie holds nothing (the jail's pid 1 can be left one under a container's init)."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


MODES = [m for m in ("bwrap", "unshare")]


def _params() -> list:
    out = []
    for mode in MODES:
        for p in FILES:
            marks = [pytest.mark.slow] if p.stem in SLOW else []
            out.append(pytest.param(mode, p, id=f"{mode}-{p.stem}", marks=marks))
    return out


@pytest.mark.parametrize(("mode", "path"), _params())
def test_sandbox_contains(mode: str, path: Path, world) -> None:
    why = probe(mode, sys.executable, UIDS[0])
    if why is not None:
        pytest.skip(f"{mode} sandbox unavailable: {why}")
    if re.search(r"^# needs: seccomp$", path.read_text(), re.M):
        ok, why = seccomp_available()
        if not ok:
            pytest.skip(f"seccomp unavailable: {why}")
    _, _, expect = header(path)
    # "# timeouts: python=S task=S" where a program must get past the interpreter's start-up
    # (seconds under a loaded CI machine) before its limit is what stops it
    t = re.search(r"^# timeouts: python=([\d.]+) task=([\d.]+)$", path.read_text(), re.M)
    python_timeout_s, task_timeout_s = (float(t[1]), float(t[2])) if t else (1.0, 2.0)
    reply = '{"thinking": "ok", "answer": "42"}'
    budget = Budget(BudgetSettings(max_calls=MAX_CALLS))
    gw = scripted_gateway([reply], budget=budget)
    limits = SandboxLimits(cpu_s=4, memory_mb=768, file_size_mb=4, nproc=48,
                           task_timeout_s=task_timeout_s, candidate_timeout_s=20.0,
                           max_output_chars=10_000, max_answer_chars=10_000,
                           max_log_bytes=8_192, max_inflight_calls=32)
    settings = AgentSettings(model=MODEL, answer_hint="an integer", protocol="json",
                             candidate=CANDIDATE, max_tokens=256, threads=2,
                             python_timeout_s=python_timeout_s, python_memory_mb=128,
                             python_output_chars=2000)
    tasks = [Task(id="t0", question="What is 6*7?", answer="42", meta={"gold": world["secret"]})]
    key_before = (world["home"] / ".ssh" / "id_rsa").read_text()
    other_before = (world["other"] / "notes.txt").read_text()
    try:
        with SandboxRunner(mode=mode, gateway=gw, limits=limits, uids=UIDS,
                           call_threads=CALL_THREADS,
                           scratch_root=world["scratch_root"]) as runner:
            result = runner.run_detailed(fill(path, world["subs"]), tasks, settings)
    finally:
        gw.close()
    [outcome] = result.outcomes

    # whatever the agent did: the host is fine and nothing leaked
    blob = repr(result.outcomes) + repr(result.outputs) + result.stdout + result.stderr
    assert world["secret"] not in blob
    assert "sk-test-SECRET" not in blob
    assert _sandbox_uid_processes() == []
    assert world["seen"] == []
    assert list(world["outside"].iterdir()) == []
    assert [p for p in world["host_paths"] if p.exists()] == []
    assert (world["home"] / ".ssh" / "id_rsa").read_text() == key_before
    assert (world["other"] / "notes.txt").read_text() == other_before
    assert sorted(p.name for p in world["scratch_root"].iterdir()) == ["cand-other"]
    calls = gw.backend.calls
    # The gateway checks the budget before a call and charges after it, so calls that were
    # already in flight when the cap was reached may still land: at most one per host thread.
    assert len(calls) <= MAX_CALLS + CALL_THREADS
    for req in calls:
        assert (req.role, req.candidate, req.model) == ("task", CANDIDATE, MODEL)
        assert req.max_tokens is not None and req.max_tokens <= settings.max_tokens
    snap = gw.snapshot()
    assert set(snap.by_candidate) <= {CANDIDATE}
    assert set(snap.by_role) <= {"task"}
    assert snap.total.calls == len(calls)

    # and the failure (or answer) the header promises
    where = f"{path.name} [{mode}]: {outcome}"
    if expect == "blocked":
        assert outcome.answer is not None and outcome.answer.startswith("BLOCKED"), where
    elif expect == "truncated":
        assert outcome.truncated, where
        assert outcome.answer is None or len(outcome.answer) <= limits.max_answer_chars
    elif expect.startswith("kind="):
        kinds = expect.removeprefix("kind=").split("|")
        assert outcome.error is not None and outcome.error.kind in kinds, where
    elif expect.startswith("answer="):
        assert outcome.answer == expect.removeprefix("answer="), where
    elif expect.startswith("contains="):
        assert outcome.answer is not None and expect.removeprefix("contains=") in outcome.answer
    else:
        assert expect == "any", f"{path.name}: unknown sandbox expectation {expect!r}"
