# Hostile: reach __import__ through a function's __globals__ and the builtins.
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: dunder-attribute line 8
# sandbox: any


def forward(self, taskInfo):
    b = forward.__globals__["__builtins__"]
    imp = b["__import__"] if isinstance(b, dict) else b.__import__
    os = imp("os")
    return repr(os.environ.get("OPENAI_API_KEY")) + open("/proc/self/environ").read()
