# Hostile: a fork bomb through run_python (the program is never validated).
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: ok
# sandbox: contains=BlockingIOError


def forward(self, taskInfo):
    program = (
        "import os\n"
        "while True:\n"
        "    if os.fork() == 0:\n"
        "        while True:\n"
        "            os.fork()\n"
    )
    return run_python(program)
