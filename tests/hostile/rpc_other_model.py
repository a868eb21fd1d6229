# Hostile: skip LLMAgentBase's model choice and ask the host, over the worker's own RPC
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# transport, for the meta model, a made-up provider and a paid model: all must be refused.
# validate: import-not-allowed line 9
# sandbox: answer=refused 4 of 4


def forward(self, taskInfo):
    from metasearch.llm.types import LLMRequest
    agent = LLMAgentBase(["answer"], "model thief", model="local/qwen2.5-coder-1.5b")
    transport = type(agent)._ctx.transport
    refused = 0
    wanted = ["local/qwen2.5-coder-1.5b", "evil/any-model", "openai/gpt-4o", "@@MODEL@@ "]
    for model in wanted:
        request = LLMRequest(model=model, messages=({"role": "user", "content": "hi"},),
                             temperature=0.5, max_tokens=16, role="task")
        try:
            transport.complete(request)
        except Exception as e:
            refused += "not available to agents" in str(e)
    return f"refused {refused} of {len(wanted)}"
