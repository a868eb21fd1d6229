"""MLflow tracking: a campaign is an experiment, a candidate is a nested run.

The archive is the source of truth; MLflow is a projection of it. Every
write here is idempotent: the parent run is found again by a tag, each
candidate run by its candidate id, so a resumed campaign (or :meth:`Tracker.sync`
after a crash between the archive append and the MLflow call) never
duplicates runs.

mlflow is imported inside functions only, so ``metasearch --help`` stays fast.
Set ``LITELLM_LOCAL_MODEL_COST_MAP=True`` before using this module (mlflow
imports litellm; see PITFALLS.md).

Each candidate that was evaluated is also an MLflow *logged model* (model
type ``agent``, named by its id, linked to its run, with its validation and
later test metrics), and up to ``max_trace_tasks`` of its validation tasks
(failed and wrong ones first) are MLflow traces with one span per LLM call,
linked to the run and the model (:mod:`metasearch.store.mlflow_traces`).

Example::

    tracker = Tracker.for_campaign("runs/quickstart")
    tracker.start(config.to_flat_params(), models={"meta": ..., "task": ...})
    tracker.log_candidate(record, step=3, code=src, transcript=text)
    tracker.finish()
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from metasearch.store.archive import Archive
from metasearch.store.mlflow_store import seed_sqlite_store
from metasearch.store.mlflow_traces import MAX_TRACE_TASKS, log_task_traces
from metasearch.store.records import CandidateRecord, SplitScore, progress_curve

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "CampaignData",
    "CandidateRow",
    "Tracker",
    "default_tracking_uri",
    "read_campaign",
]

TAG_ROLE = "metasearch.role"  # "campaign" on the parent run, "candidate" on nested runs
TAG_CANDIDATE = "metasearch.candidate_id"
TAG_STATUS = "status"
TAG_GENERATION = "metasearch.generation"
TAG_COMPLETE = "metasearch.complete"
TAG_MODEL = "metasearch.model_id"  # the candidate's logged model ("Agent versions" in the UI)
TAG_PARETO = "pareto_front"  # "true" on the runs of the Pareto front (set with the report)
FRONT_FILE = "pareto.json"  # the front as the report computed it (reporting/pareto.py)
_PARAM_MAX = 500
_RUN_STATUS = {"ok": "FINISHED", "pruned": "KILLED", "budget": "KILLED"}  # else FAILED


def default_tracking_uri(campaign_dir: str | Path) -> str:
    """``sqlite:///<abs campaign dir>/mlflow.db``."""
    return f"sqlite:///{Path(campaign_dir).resolve() / 'mlflow.db'}"


def _client(uri: str) -> MlflowClient:
    from mlflow import MlflowClient

    # MLflow logs each database error with its traceback, then raises it again: the raised
    # one is what the caller reports (a full disk as one paragraph), the logged copy is noise.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    return MlflowClient(tracking_uri=uri)


class Tracker:
    """Logs one campaign to MLflow. Call it from the campaign loop's thread only."""

    def __init__(
        self,
        *,
        tracking_uri: str,
        experiment_name: str,
        artifact_location: str | None = None,
        max_trace_tasks: int = MAX_TRACE_TASKS,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.max_trace_tasks = max_trace_tasks
        self.experiment_name = experiment_name
        self.artifact_location = artifact_location
        self._client_obj: MlflowClient | None = None
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        self._runs: dict[str, str] = {}  # candidate id → run id
        self._models: dict[str, str] = {}
        # one of several workers on one server: which records this worker logs (its own)
        self.owned: Callable[[str], bool] | None = None

    @classmethod
    def for_campaign(cls, campaign_dir: str | Path, *, tracking_uri: str | None = None,
                     experiment_name: str | None = None) -> Tracker:
        """The experiment is named after the campaign directory (or ``experiment_name``).

        Without ``tracking_uri``: sqlite in the campaign dir, artifacts under
        ``<campaign_dir>/mlartifacts``. With one (a server), the server
        chooses where artifacts go.
        """
        root = Path(campaign_dir).resolve()
        name = experiment_name or root.name
        if tracking_uri:
            return cls(tracking_uri=tracking_uri, experiment_name=name)
        return cls(
            tracking_uri=default_tracking_uri(root),
            experiment_name=name,
            artifact_location=(root / "mlartifacts").as_uri(),
        )

    @property
    def client(self) -> MlflowClient:
        if self._client_obj is None:
            if self.tracking_uri.startswith("sqlite:///") and self.artifact_location:
                seed_sqlite_store(Path(self.tracking_uri.removeprefix("sqlite:///")),
                                  Path(unquote(urlparse(self.artifact_location).path)))
            self._client_obj = _client(self.tracking_uri)
        return self._client_obj

    # ---- campaign (parent run)

    def start(
        self,
        params: Mapping[str, str],
        *,
        models: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Get or create the experiment and the parent run; returns the parent run id.

        On resume the parent run is reused. Params already logged keep their
        value (MLflow forbids changing one); a changed value, such as a raised
        budget, is recorded as the tag ``resumed.<key>``.
        """
        from mlflow.entities import Param, RunTag

        c = self.client
        self._models = dict(models or {})
        self.experiment_id = self._experiment()
        parent = self._find_parent()
        if parent is None:
            run = c.create_run(
                self.experiment_id,
                tags={TAG_ROLE: "campaign", **dict(tags or {})},
                run_name=self.experiment_name,
            )
            self.parent_run_id = run.info.run_id
            old: dict[str, str] = {}
        else:
            self.parent_run_id = parent.info.run_id
            old = dict(parent.data.params)
            c.update_run(self.parent_run_id, status="RUNNING")
        new = {k: _clip(v) for k, v in params.items()}
        fresh = [Param(k, v) for k, v in new.items() if k not in old]
        changed = [RunTag(f"resumed.{k}", v) for k, v in new.items() if k in old and old[k] != v]
        extra = [RunTag(k, v) for k, v in (tags or {}).items()] if parent is not None else []
        for i in range(0, max(len(fresh), 1), 100):  # log_batch takes at most 100 params
            c.log_batch(
                self.parent_run_id,
                params=fresh[i : i + 100],
                tags=changed + extra if i == 0 else [],
            )
        self._runs = self._existing_candidates()
        return self.parent_run_id

    def finish(self, status: str = "FINISHED") -> None:
        """Mark the parent run FINISHED (or FAILED / KILLED)."""
        if self.parent_run_id is not None:
            self.client.set_terminated(self.parent_run_id, status=status)

    def log_report(self, campaign_dir: str | Path) -> None:
        """Attach ``report.md``, its plots and ``pareto.json`` (when present) to the parent run.

        The Pareto front in ``pareto.json`` (written with the report) is tagged on
        the candidate runs: see :meth:`tag_front`.
        """
        root = Path(campaign_dir)
        for name in ("report.md", "progress.png", "pareto.png", FRONT_FILE):
            if (root / name).is_file():
                self.client.log_artifact(self._parent(), str(root / name))
        front = _front_ids(root / FRONT_FILE)
        if front is not None:
            self.tag_front(front)

    def tag_front(self, front: Iterable[str]) -> None:
        """Tag every candidate run ``pareto_front`` = ``"true"`` (its id is in ``front``) or ``"false"``.

        The front moves as records arrive, so this runs once, with the report.
        """
        ids = set(front)
        for cid, rid in self._runs.items():
            self.client.set_tag(rid, TAG_PARETO, "true" if cid in ids else "false")

    # ---- candidates (nested runs)

    def has_candidate(self, cid: str) -> bool:
        return cid in self._runs

    def log_candidate(
        self,
        record: CandidateRecord,
        *,
        step: int,
        code: str | None = None,
        transcript: str | None = None,
        results: Any | None = None,
        traces: Sequence[Mapping[str, Any]] | None = None,
        best_val: float | None = None,
        cum_cost_usd: float | None = None,
        cum_calls: int | None = None,
    ) -> str:
        """Create the nested run of ``record`` unless it exists; returns its run id.

        ``step`` is the candidate's index in the archive. ``best_val``,
        ``cum_cost_usd`` and ``cum_calls`` (best-so-far and totals up to and
        including this candidate) go on the parent run as step metrics.
        ``traces`` are the candidate's validation trace lines (``Archive.read_traces``).
        """
        from mlflow.entities import Metric, Param, RunTag

        if record.id in self._runs:
            return self._runs[record.id]
        c = self.client
        now = int(time.time() * 1000)
        tags = {
            TAG_ROLE: "candidate",
            TAG_CANDIDATE: record.id,
            TAG_STATUS: record.status,
            TAG_GENERATION: str(record.generation),
            "mlflow.parentRunId": self._parent(),
        }
        run = c.create_run(
            self.experiment_id or "", tags=tags, run_name=f"{record.id} {record.name}"[:250]
        )
        rid = run.info.run_id
        params = {
            "id": record.id,
            "name": record.name,
            "generation": str(record.generation),
            "parent": ",".join(record.parent_ids),
            "strategy": record.strategy,
            "fingerprint": record.fingerprint,
            **{f"model.{k}": v for k, v in self._models.items()},
            **{f"model.{k}": str(v) for k, v in dict(record.meta.get("models") or {}).items()},
            # a structured strategy's choices (a search-space trial's drawn knobs)
            **{f"param.{k}": str(v) for k, v in dict(record.meta.get("params") or {}).items()},
        }
        metrics = {
            "calls": record.calls,
            "tokens": record.tokens,
            "cost_usd": record.cost_usd,
            "wall_s": record.wall_s,
            "errors": record.errors,
            # per validation task: the cost objectives a two-objective study minimises
            **({"calls_per_task": record.calls / record.val.n,
                "tokens_per_task": record.tokens / record.val.n,
                "cost_usd_per_task": record.cost_usd / record.val.n}
               if record.val is not None and record.val.n else {}),
        }
        scores = {**_score_metrics("val", record.val), **_score_metrics("test", record.test)}
        model_id = self._create_model(record, rid, params) if record.val is not None else None
        extra_tags = {"reason": record.reason[:5000]} if record.reason else {}
        if model_id is not None:
            extra_tags[TAG_MODEL] = model_id
        c.log_batch(
            rid,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if _finite(v)]
            + [Metric(k, float(v), now, 0, model_id=model_id)
               for k, v in scores.items() if _finite(v)],
            params=[Param(k, _clip(v)) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in extra_tags.items()],
        )
        if code is not None:
            c.log_text(rid, code, "agent.py")
        if record.thought:
            c.log_text(rid, f"# {record.name}\n\n{record.thought}\n", "thought.md")
        if transcript:
            c.log_text(rid, transcript, "transcript.md")
        if results is not None:
            c.log_dict(
                rid, results if isinstance(results, dict) else {"results": results}, "results.json"
            )
        c.log_dict(rid, _scores_doc(record), "scores.json")
        if model_id is not None:
            from mlflow.entities import LoggedModelStatus

            c.finalize_logged_model(model_id, LoggedModelStatus.READY)
        if traces:
            log_task_traces(self.tracking_uri, self.experiment_id or "", run_id=rid,
                            candidate_id=record.id, lines=traces, model_id=model_id,
                            limit=self.max_trace_tasks)
        step_metrics = {
            "best_val_score": best_val,
            "cum_cost_usd": cum_cost_usd,
            "cum_calls": cum_calls,
        }
        c.log_batch(
            self._parent(),
            metrics=[Metric(k, float(v), now, step) for k, v in step_metrics.items() if _finite(v)],
        )
        c.set_tag(rid, TAG_COMPLETE, "1")  # last: a run without it was cut off by a crash
        c.set_terminated(rid, status=_RUN_STATUS.get(record.status, "FAILED"))
        self._runs[record.id] = rid
        return rid

    def log_test(self, record: CandidateRecord) -> None:
        """Add ``test_score`` (and its CI) to the candidate's run; no-op if already there."""
        from mlflow.entities import Metric

        if record.test is None or record.id not in self._runs:
            return
        rid = self._runs[record.id]
        c = self.client
        if "test_score" in c.get_run(rid).data.metrics:
            return
        now = int(time.time() * 1000)
        model_id = c.get_run(rid).data.tags.get(TAG_MODEL)
        c.log_batch(
            rid,
            metrics=[Metric(k, v, now, 0, model_id=model_id)
                     for k, v in _score_metrics("test", record.test).items()],
        )
        c.log_dict(rid, _scores_doc(record), "scores.json")

    def sync(self, archive: Archive) -> int:
        """Log every archive record that has no run yet (and missing test scores).

        Code, transcripts and results come from the archive's files. Returns
        the number of runs created. This is how a resumed campaign catches up
        after a crash between an archive append and the MLflow call.
        """
        created = 0
        records = archive.records()
        for point, rec in zip(progress_curve(records), records, strict=True):
            if rec.id not in self._runs and (self.owned is None or self.owned(rec.id)):
                code = (
                    archive.read_agent(rec.id)
                    if rec.code_path and (archive.root / rec.code_path).is_file()
                    else None
                )
                self.log_candidate(
                    rec,
                    step=point.step,
                    code=code,
                    transcript=archive.read_transcript(rec.id),
                    results=archive.read_results(rec.id),
                    traces=archive.read_traces(rec.id),
                    best_val=point.best_val,
                    cum_cost_usd=point.cum_cost_usd,
                    cum_calls=point.cum_calls,
                )
                created += 1
            elif rec.test is not None:
                self.log_test(rec)
        return created

    def catch_up(self, archive: Archive) -> int:
        """Log every record the server lacks, whoever committed it (after the final test)."""
        owned, self.owned = self.owned, None  # all workers are done: redo half-logged runs
        try:
            self._runs = self._existing_candidates()
            return self.sync(archive)
        finally:
            self.owned = owned

    # ---- internals

    def _parent(self) -> str:
        if self.parent_run_id is None:
            raise RuntimeError("Tracker.start() must be called first")
        return self.parent_run_id

    def _experiment(self) -> str:
        c = self.client
        exp = c.get_experiment_by_name(self.experiment_name)
        if exp is None:
            return c.create_experiment(
                self.experiment_name, artifact_location=self.artifact_location
            )
        if exp.lifecycle_stage == "deleted":
            c.restore_experiment(exp.experiment_id)
        return exp.experiment_id

    def _create_model(self, record: CandidateRecord, rid: str, params: Mapping[str, str]) -> str:
        """Register ``record`` as a logged model of type ``agent`` (finalized once logged)."""
        model = self.client.create_logged_model(
            self.experiment_id or "", name=_model_name(record.id), source_run_id=rid,
            model_type="agent", params={k: _clip(v) for k, v in params.items() if v},
            tags={TAG_CANDIDATE: record.id, TAG_STATUS: record.status,
                  "name": record.name[:250]},
        )
        return model.model_id

    def _forget(self, run_id: str) -> None:
        """Delete a half-logged run with its traces and logged models."""
        c = self.client
        eid = self.experiment_id or ""
        # pages of 500 (a tracking server refuses more), all read before any is deleted
        traces = _paged(c.search_traces, 500, locations=[eid], run_id=run_id,
                        include_spans=False)
        if traces:
            c.delete_traces(eid, trace_ids=[t.info.trace_id for t in traces])
        for model in c.search_logged_models(
                [eid], filter_string=f"source_run_id = '{run_id}'", max_results=100):
            c.delete_logged_model(model.model_id)
        c.delete_run(run_id)

    def _find_parent(self) -> Any | None:
        runs = self.client.search_runs(
            [self.experiment_id or ""],
            filter_string=f"tags.`{TAG_ROLE}` = 'campaign'",
            max_results=1,
            order_by=["attributes.start_time ASC"],
        )
        return runs[0] if runs else None

    def _existing_candidates(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for run in _all_runs(
            self.client, self.experiment_id or "", f"tags.`{TAG_ROLE}` = 'candidate'"
        ):
            cid = run.data.tags.get(TAG_CANDIDATE)
            if not cid or cid in found:
                continue
            if run.data.tags.get(TAG_COMPLETE) != "1":
                if self.owned is None:  # alone: half-logged before a crash, so redo it
                    self._forget(run.info.run_id)
                continue  # one of several workers: maybe another's run in progress
            found[cid] = run.info.run_id
        return found


def _front_ids(path: Path) -> set[str] | None:
    """The ids of the front in a report's ``pareto.json``; ``None`` without a readable one."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return {str(p["id"]) for p in doc["front"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _all_runs(client: MlflowClient, exp_id: str, filter_string: str) -> list[Any]:
    return _paged(client.search_runs, 1000, experiment_ids=[exp_id],
                  filter_string=filter_string, order_by=["attributes.start_time ASC"])


def _paged(search: Any, size: int, **kw: Any) -> list[Any]:
    """Every page of an MLflow ``search_*`` call (each a PagedList with a ``token``)."""
    out: list[Any] = []
    token: str | None = None
    while True:
        page = search(max_results=size, page_token=token, **kw)
        out.extend(page)
        token = page.token
        if not token:
            return out


def _score_metrics(prefix: str, s: SplitScore | None) -> dict[str, float]:
    if s is None:
        return {}
    return {
        f"{prefix}_score": s.mean,
        f"{prefix}_ci_low": s.ci_low,
        f"{prefix}_ci_high": s.ci_high,
        f"{prefix}_n": float(s.n),
    }


def _scores_doc(r: CandidateRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "validation": r.val.to_json() if r.val else None,
        "test": r.test.to_json() if r.test else None,
    }


def _model_name(cid: str) -> str:
    """Logged-model names allow letters, digits and ``-_.``; candidate ids already do."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in cid)[:250]


def _finite(v: Any) -> bool:
    return v is not None and isinstance(v, int | float) and math.isfinite(float(v))


def _clip(v: Any) -> str:
    s = str(v)
    return s if len(s) <= _PARAM_MAX else s[: _PARAM_MAX - 3] + "..."


# --------------------------------------------------------------------------- reading back


@dataclass(frozen=True)
class CandidateRow:
    """One candidate run as read from the tracking store."""

    id: str
    run_id: str
    name: str
    generation: str
    status: str
    params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    start_time: int = 0

    def scores(self, client: Any) -> dict[str, Any]:
        """Per-task scores ({"validation": {...}, "test": {...}}) from the run's ``scores.json``."""
        with tempfile.TemporaryDirectory(prefix="metasearch-") as d:
            local = client.download_artifacts(self.run_id, "scores.json", d)
            return json.loads(Path(local).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class CampaignData:
    """Everything ``metasearch compare`` needs about one campaign."""

    tracking_uri: str
    experiment_name: str
    experiment_id: str
    parent_run_id: str | None
    params: Mapping[str, str]
    candidates: tuple[CandidateRow, ...]
    best_so_far: tuple[tuple[int, float], ...]  # (step, best_val_score)
    cum_cost: tuple[tuple[int, float], ...]  # (step, cum_cost_usd)
    cum_calls: tuple[tuple[int, float], ...]  # (step, cum_calls)

    def candidate_scores(self, cid: str) -> dict[str, Any]:
        """Per-task validation/test scores of candidate ``cid`` (for paired statistics)."""
        row = next((r for r in self.candidates if r.id == cid), None)
        if row is None:
            raise KeyError(cid)
        return row.scores(_client(self.tracking_uri))


def read_campaign(tracking_uri: str, experiment_name: str) -> CampaignData:
    """Read one campaign back from any MLflow store (local sqlite or a server)."""
    from metasearch.errors import DataError

    c = _client(tracking_uri)
    exp = c.get_experiment_by_name(experiment_name)
    if exp is None:
        raise DataError(
            f"The tracking store {tracking_uri} has no experiment {experiment_name!r}. "
            f"A campaign's experiment is named after its directory; check the name and the URI."
        )
    eid = exp.experiment_id
    parents = _all_runs(c, eid, f"tags.`{TAG_ROLE}` = 'campaign'")
    parent = parents[0] if parents else None
    rows: dict[str, CandidateRow] = {}
    for run in _all_runs(c, eid, f"tags.`{TAG_ROLE}` = 'candidate'"):
        tags = dict(run.data.tags)
        cid = tags.get(TAG_CANDIDATE, "")
        if not cid or cid in rows:
            continue
        params = dict(run.data.params)
        rows[cid] = CandidateRow(
            id=cid,
            run_id=run.info.run_id,
            name=params.get("name", ""),
            generation=params.get("generation", tags.get(TAG_GENERATION, "")),
            status=tags.get(TAG_STATUS, ""),
            params=params,
            metrics=dict(run.data.metrics),
            tags={k: v for k, v in tags.items() if not k.startswith("mlflow.")},
            start_time=int(run.info.start_time or 0),
        )

    def history(key: str) -> tuple[tuple[int, float], ...]:
        if parent is None:
            return ()
        hist = c.get_metric_history(parent.info.run_id, key)
        return tuple(sorted((int(m.step), float(m.value)) for m in hist))

    return CampaignData(
        tracking_uri=tracking_uri,
        experiment_name=experiment_name,
        experiment_id=eid,
        parent_run_id=parent.info.run_id if parent else None,
        params=dict(parent.data.params) if parent else {},
        candidates=tuple(rows.values()),
        best_so_far=history("best_val_score"),
        cum_cost=history("cum_cost_usd"),
        cum_calls=history("cum_calls"),
    )
