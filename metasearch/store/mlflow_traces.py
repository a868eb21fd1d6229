"""A candidate's task traces as MLflow traces: one trace per task, one span per LLM call.

The traces are built whole from the archive's trace lines (see
:mod:`metasearch.runtime.traces`) and written through a tracing client
bound to the tracker's own URI, so nothing here touches MLflow's global
tracking URI or tracer (several campaigns can log from one process).

Each trace carries the metadata MLflow's UI links by: ``mlflow.sourceRun``
(the candidate's run) and ``mlflow.modelId`` (its logged model, when it has
one); and the tags ``metasearch.candidate_id``, ``metasearch.task_id``,
``metasearch.score``. The root span (``AGENT``) holds the question as input
and the answer, gold answer, score and error as output; each call is a
``CHAT_MODEL`` span named after its agent, with the system and user
messages, the reply, the token usage, the model, whether it was cached and
its protocol events.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

__all__ = ["MAX_TRACE_TASKS", "pick_tasks", "log_task_traces"]

#: Tasks per candidate that get an MLflow trace (failed and wrong ones first).
MAX_TRACE_TASKS = 8
_PREVIEW = 1000


def pick_tasks(lines: Sequence[Mapping[str, Any]], limit: int) -> list[Mapping[str, Any]]:
    """Up to ``limit`` task lines: failed and wrong tasks first, then the rest, in task order."""
    def ok(ln: Mapping[str, Any]) -> bool:
        return not ln.get("error") and float(ln.get("score") or 0.0) >= 1.0

    return sorted(lines, key=ok)[:max(0, limit)]  # stable: task order within each group


def log_task_traces(
    tracking_uri: str, experiment_id: str, *, run_id: str, candidate_id: str,
    lines: Sequence[Mapping[str, Any]], model_id: str | None = None,
    limit: int = MAX_TRACE_TASKS,
) -> list[str]:
    """Write one MLflow trace per picked task line; returns the trace ids."""
    from mlflow.entities import Trace
    from mlflow.tracing.client import TracingClient

    client = TracingClient(tracking_uri)
    ids = []
    for line in pick_tasks(lines, limit):
        trace = Trace.from_dict(_trace_dict(line, experiment_id, run_id, candidate_id, model_id))
        info = client.start_trace(trace.info)
        try:
            client.log_spans(experiment_id, trace.data.spans)
        except NotImplementedError:  # a store without span storage: spans go to artifacts
            client._upload_trace_data(info, trace.data)
        ids.append(info.trace_id)
    return ids


def _trace_dict(line: Mapping[str, Any], experiment_id: str, run_id: str, candidate_id: str,
                model_id: str | None) -> dict[str, Any]:
    hex_id = secrets.token_hex(16)
    trace_id = f"tr-{hex_id}"
    calls = list(line.get("calls") or ())
    now = time.time()
    starts = [float(c.get("start") or now) for c in calls]
    ends = [s + float(c.get("latency_s") or 0.0) for s, c in zip(starts, calls, strict=True)]
    t0 = min(starts, default=now)
    t1 = max(ends, default=t0)
    t1 = max(t1, t0 + 0.001)
    inputs = {"question": line.get("question", "")}
    outputs = {k: line.get(k) for k in ("answer", "gold", "score", "error")}
    root_id = secrets.token_hex(8)
    spans = [_span(hex_id, trace_id, root_id, None, f"task {line.get('task_id')}", "AGENT",
                   inputs, outputs, t0, t1, error=bool(line.get("error")),
                   extra={"metasearch.dropped_calls": line.get("dropped_calls", 0),
                          "metasearch.events": line.get("events", [])})]
    for call, start, end in zip(calls, starts, ends, strict=True):
        messages = [{"role": "system", "content": call.get("system", "")},
                    {"role": "user", "content": call.get("prompt", "")}]
        tokens = {"input_tokens": int(call.get("prompt_tokens") or 0),
                  "output_tokens": int(call.get("completion_tokens") or 0)}
        tokens["total_tokens"] = tokens["input_tokens"] + tokens["output_tokens"]
        spans.append(_span(
            hex_id, trace_id, secrets.token_hex(8), root_id, call.get("agent") or "llm call",
            "CHAT_MODEL", {"messages": messages},
            {"reply": call.get("reply", ""), **({"error": call["error"]} if call.get("error") else {})},
            start, max(end, start + 1e-6), error=bool(call.get("error")),
            extra={"mlflow.chat.tokenUsage": tokens, "model": call.get("model", ""),
                   "cached": bool(call.get("cached")), "repair": bool(call.get("repair")),
                   "events": list(call.get("events") or ()), "cut": call.get("cut") or {},
                   "n_messages": call.get("n_messages", 0)}))
    metadata = {"mlflow.sourceRun": run_id, "mlflow.trace_schema.version": "3",
                "mlflow.traceInputs": _preview(inputs), "mlflow.traceOutputs": _preview(outputs)}
    if model_id:
        metadata["mlflow.modelId"] = model_id
    return {
        "info": {
            "trace_id": trace_id,
            "trace_location": {"type": "MLFLOW_EXPERIMENT",
                               "mlflow_experiment": {"experiment_id": experiment_id}},
            "request_time": datetime.fromtimestamp(t0, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "execution_duration_ms": int((t1 - t0) * 1000),
            "state": "ERROR" if line.get("error") else "OK",
            "trace_metadata": metadata,
            "tags": {"mlflow.traceName": f"{candidate_id} task {line.get('task_id')}",
                     "metasearch.candidate_id": candidate_id,
                     "metasearch.task_id": str(line.get("task_id")),
                     "metasearch.score": str(line.get("score"))},
            "request_preview": _preview(inputs),
            "response_preview": _preview(outputs),
        },
        "data": {"spans": spans},
    }


def _span(hex_trace: str, trace_id: str, span_id: str, parent: str | None, name: str,
          span_type: str, inputs: Any, outputs: Any, start: float, end: float, *,
          error: bool, extra: Mapping[str, Any]) -> dict[str, Any]:
    attributes = {"mlflow.traceRequestId": trace_id, "mlflow.spanType": span_type,
                  "mlflow.spanInputs": inputs, "mlflow.spanOutputs": outputs, **extra}
    return {
        "trace_id": _b64(hex_trace), "span_id": _b64(span_id),
        "parent_span_id": _b64(parent) if parent else None, "name": str(name)[:250],
        "start_time_unix_nano": int(start * 1e9), "end_time_unix_nano": int(end * 1e9),
        "events": [], "links": [],
        "status": {"code": "STATUS_CODE_ERROR" if error else "STATUS_CODE_OK", "message": ""},
        "attributes": {k: json.dumps(v, ensure_ascii=False, default=str)
                       for k, v in attributes.items()},
    }


def _b64(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode()


def _preview(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)[:_PREVIEW]
