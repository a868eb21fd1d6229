# Hostile: allocate until the machine falls over, through run_python.
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: ok
# sandbox: contains=ran out of memory
# timeouts: python=8 task=12


def forward(self, taskInfo):
    program = (
        "blocks = []\n"
        "while True:\n"
        "    blocks.append(bytearray(16 << 20))\n"
    )
    return run_python(program)
