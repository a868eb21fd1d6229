# Hostile: walk stack frames up to the worker and grab its RPC transport.
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: forbidden-attribute line 11
# sandbox: any


def forward(self, taskInfo):
    def gen():
        yield 1
    g = gen()
    f = g.gi_frame
    found = []
    while f is not None:
        found.extend(k for k in f.f_locals if "transport" in k or "channel" in k)
        f = f.f_back
    return "frames " + repr(found)
