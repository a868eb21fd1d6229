"""run_python: the child's limits and what it can see, in this process (the in-process path).

The same tool inside the sandbox is tested in test_sandbox_python.py and by the
python_* agents of the hostile corpus.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_runtime_fakes import FakeTransport, settings

from metasearch.runtime import Info, load_agent
from metasearch.runtime.pyrun import PythonLimits, PythonResult, run_program
from metasearch.runtime.python_tool import PYTHON_EVENTS, PythonTool, program_text

FAST = PythonLimits(timeout_s=2.0, memory_mb=128, output_chars=300)


def run(code: str, limits: PythonLimits = FAST) -> PythonResult:
    return run_program(textwrap.dedent(code), limits)


def test_a_program_returns_what_it_printed():
    r = run("print(sum(range(10)))\nprint(2 ** 100)\n")
    assert r == "45\n1267650600228229401496703205376\n"
    assert r.ok and r.kind == "ok" and r.exit_code == 0 and type(str(r)) is str


def test_an_exception_names_the_line_and_the_error():
    r = run("x = 3\ny = x / 0\n")
    assert not r.ok and r.kind == "error"
    assert r.startswith("Error: the program raised an exception")
    assert 'line 2' in r and "y = x / 0" in r and "ZeroDivisionError: division by zero" in r
    assert "launcher" not in r and "<string>" not in r  # only the program's own frames


def test_output_printed_before_a_failure_is_kept():
    r = run("print('partial')\nraise ValueError('bad input')\n")
    assert r.startswith("Error:") and r.endswith("Its output before it stopped:\npartial\n")
    assert "ValueError: bad input" in r and r.stdout == "partial\n"


def test_syntax_errors_and_exit_status():
    assert "SyntaxError" in run("def f(:\n")
    r = run("import sys\nsys.exit(3)\n")
    assert r.kind == "error" and r.exit_code == 3 and "exited with status 3" in r


def test_wall_clock_limit_stops_an_endless_loop():
    start = time.monotonic()
    r = run("while True:\n    pass\n", PythonLimits(timeout_s=0.5))
    assert time.monotonic() - start < 3
    assert r.kind == "timeout" and "did not finish within its time limit of 0.5 s" in r


def test_wall_clock_limit_stops_a_sleeper():
    r = run("import time\ntime.sleep(60)\n", PythonLimits(timeout_s=0.5))
    assert r.kind == "timeout"


def test_cpu_limit_is_a_backstop_of_its_own():
    r = run("while True:\n    pass\n", PythonLimits(timeout_s=10, cpu_s=1))
    assert r.kind == "timeout" and "CPU time limit of 1 s" in r


def test_memory_cap_gives_a_clear_error():
    r = run("blocks = []\nwhile True:\n    blocks.append(bytearray(8 << 20))\n")
    assert r.kind == "memory" and "ran out of memory (its limit is 128 MB)" in r


def test_output_cap_truncates_with_a_marker_and_stops_the_flood():
    start = time.monotonic()
    r = run("while True:\n    print('x' * 99)\n")
    assert time.monotonic() - start < 1.5  # stopped at the cap, not at the time limit
    assert r.kind == "output" and "output truncated at 300 characters" in r
    assert "[... output truncated at 300 characters ...]" in r.stdout
    assert len(r) < 300 + 400


def test_a_stderr_flood_is_stopped_too():
    r = run("import sys\nwhile True:\n    sys.stderr.write('e' * 1000)\n", PythonLimits(timeout_s=5))
    assert r.kind == "output" and len(r) < 2000


def test_no_stdin_and_no_inherited_fds():
    leak = socket.socket()
    os.set_inheritable(leak.fileno(), True)  # even an inheritable fd of the parent stays out
    try:
        r = run("""
            import os, sys
            print(repr(sys.stdin.read()))
            fds = []
            for fd in range(3, 1024):
                try:
                    os.fstat(fd)
                    fds.append(fd)
                except OSError:
                    pass
            print(fds)
        """)
    finally:
        leak.close()
    assert r == "''\n[]\n", r


def test_a_parent_with_more_than_1024_open_fds_still_reads_the_output():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip("the hard limit on open files is below 2048")
    resource.setrlimit(resource.RLIMIT_NOFILE, (2048, hard))
    held = []
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        held = [null] + [os.dup(null) for _ in range(1100)]
        assert run("print('high')\n") == "high\n"
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_minimal_environment_private_cwd_and_no_site_packages(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRET-123")
    r = run("""
        import os, sys
        print(sorted(os.environ))
        print(os.getcwd() == os.environ['HOME'] == os.environ['TMPDIR'], os.listdir('.'))
        print(any('site-packages' in p for p in sys.path))
        try:
            import pytest
        except ImportError:
            print('no pytest')
    """, PythonLimits(output_chars=2000))
    assert "sk-test" not in r and "OPENAI" not in r
    lines = r.splitlines()
    assert lines[0] == str(sorted(["HOME", "LANG", "LC_ALL", "PATH", "PYTHONHASHSEED",
                                   "PYTHONIOENCODING", "TMPDIR"]))
    assert lines[1:] == ["True []", "False", "no pytest"]


def test_the_working_directory_is_removed_afterwards():
    r = run("import os\nopen('f.txt', 'w').write('x')\nprint(os.getcwd())\n")
    assert r.ok and not Path(r.strip()).exists()


def test_file_size_is_capped():
    r = run("open('big', 'wb').write(b'x' * (2 << 20))\n")
    assert r.kind == "error" and "File too large" in r


def test_runs_are_deterministic():
    code = "import random\nprint({'apple', 'pear', 'fig', 'kiwi'}, random.random())\n"
    assert run(code) == run(code)


@pytest.mark.skipif(os.getuid() == 0, reason="the kernel does not apply RLIMIT_NPROC to root")
def test_no_processes_or_threads():
    r = run("import os\nos.fork()\n")
    assert "BlockingIOError" in r and "cannot start processes or threads" in r
    assert "can't start new thread" in run("import threading\nthreading.Thread(target=print).start()\n")


def test_limits_are_clamped_to_the_parents_hard_limits(monkeypatch):
    real = resource.getrlimit

    def fake(which):
        return (64 << 20, 64 << 20) if which == resource.RLIMIT_AS else real(which)

    monkeypatch.setattr(resource, "getrlimit", fake)
    rl = PythonLimits(memory_mb=256).rlimits()
    assert rl["RLIMIT_AS"] == (64 << 20, 64 << 20)
    assert rl["RLIMIT_NPROC"] == (0, 0) and rl["RLIMIT_CORE"] == (0, 0)
    assert rl["RLIMIT_CPU"] == (10, 11)


def test_the_child_dies_with_its_parent(tmp_path):
    """A parent killed mid-run (a campaign SIGKILLed) leaves no sleeping program behind."""
    pidfile = tmp_path / "pid"
    driver = textwrap.dedent(f"""
        from metasearch.runtime.pyrun import PythonLimits, run_program
        run_program("import os, time\\nopen({str(pidfile)!r}, 'w').write(str(os.getpid()))\\n"
                    "time.sleep(60)\\n", PythonLimits(timeout_s=60))
    """)
    parent = subprocess.Popen([sys.executable, "-c", driver], cwd=Path(__file__).parents[1])
    try:
        deadline = time.monotonic() + 20
        while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(pidfile.read_text())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 5
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# -- the tool as agents see it -----------------------------------------------------------

def test_program_text_takes_infos_and_fenced_blocks():
    assert program_text("print(1)") == "print(1)"
    assert program_text(Info("code", "Coder", "```python\nprint(2)\n```", -1)) == "print(2)"
    assert program_text("Here it is:\n```py\n    x = 1\n    print(x)\n```\nDone.") == "x = 1\nprint(x)"
    assert program_text("```\nprint(3)") == "print(3)"  # an unclosed fence
    with pytest.raises(TypeError, match=r"run_python\(code.content\)"):
        program_text(["print(1)"])


def test_the_tool_refuses_empty_and_oversized_programs_and_notes_every_run():
    events = []
    tool = PythonTool(PythonLimits(max_code_chars=100), note=events.append)
    assert tool("  \n").kind == "refused" and "empty" in tool("")
    assert "limit is 100" in tool("print(1)\n" * 50)
    assert tool("print(1)") == "1\n"
    assert events == ["python_refused"] * 3 + ["python_ok"]
    assert set(events) <= PYTHON_EVENTS


AGENT = '''
def forward(self, taskInfo):
    coder = LLMAgentBase(['code'], 'Coder')
    [code] = coder([taskInfo], 'Write a program.')
    return run_python(code).strip()
'''


def test_agents_get_run_python_with_the_runs_limits_and_events():
    program = "```python\nprint(6 * 7)\n```"
    t = FakeTransport(lambda req: f"## code\n{program}")
    agent = load_agent(AGENT, settings(), t)
    assert agent("What is 6*7?") == "42"
    assert t.notes == {"python_ok": 1}
    slow = load_agent(AGENT.replace("Write a program.", "Loop."),
                      settings(python_timeout_s=0.3), FakeTransport(lambda req: "## code\nwhile 1: pass"))
    assert "time limit of 0.3 s" in slow("q")


def test_a_redefined_run_python_is_replaced_by_the_real_one():
    code = AGENT + "\n\ndef run_python(code):\n    return 'fake'\n"
    agent = load_agent(code, settings(), FakeTransport(lambda req: "## code\nprint(5)"))
    assert agent("q") == "5"
