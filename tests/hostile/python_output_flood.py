# Hostile: flood stdout and stderr through run_python (print, and straight to the fds).
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: ok
# sandbox: contains=output truncated at


def forward(self, taskInfo):
    program = (
        "import os, sys\n"
        "line = 'x' * 1000 + '\\n'\n"
        "while True:\n"
        "    print(line)\n"
        "    os.write(1, line.encode())\n"
        "    sys.stderr.write(line)\n"
    )
    result = run_python(program)
    return result if len(result) < 5000 else "NOT CAPPED: " + str(len(result))
