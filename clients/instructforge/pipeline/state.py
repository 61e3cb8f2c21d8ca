"""A run folder: the recipe, a SQLite journal of every outside call, stage checkpoints, records.

Resuming is replaying: stage logic is deterministic given the answers it gets, and every answer it
ever got (LLM completions by idempotency key, dedup verdicts and executions by request id) is in the
journal, so a resumed run rebuilds exactly the state the crashed one had and asks the services only
for what it never received. Keys are `run id / stage / subject / attempt`, also sent to the services, which answer
a repeated key from their own store: a call whose answer was lost in a crash is not paid twice.

Layout: `recipe.yaml`, `run.json`, `state.sqlite`, `checkpoints/`, and the outputs (`dataset.jsonl`,
`tree/`, `exports/`, `summary.json`) the stages and the CLI write.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format

from instructforge.pipeline.protocols import Completion, FinishReason, NoveltyVerdict
from instructforge.pipeline.recipe import ExploreInstructRecipe, SelfInstructRecipe, parse_recipe
from instructforge.pipeline.records import Record
from instructforge.pipeline.stats import StageStats
from instructforge.verifier.v1 import verifier_pb2 as vf

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
  key TEXT PRIMARY KEY, stage TEXT NOT NULL, texts TEXT NOT NULL, finish_reasons TEXT NOT NULL,
  prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, cost_usd REAL NOT NULL,
  cache_hit INTEGER NOT NULL, model TEXT NOT NULL, error TEXT, created REAL NOT NULL);
-- dedup verdicts and executions by request id, similarity scores by key: any non-LLM answer worth not
-- asking twice
CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, stage TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stages (
  name TEXT PRIMARY KEY, status TEXT NOT NULL, started REAL, finished REAL, stats TEXT);
CREATE TABLE IF NOT EXISTS records (
  id TEXT PRIMARY KEY, stage TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL, task TEXT NOT NULL,
  instruction TEXT NOT NULL, input TEXT NOT NULL, output TEXT NOT NULL, meta TEXT NOT NULL, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS records_status ON records(status, seq);
"""

Recipe = SelfInstructRecipe | ExploreInstructRecipe


class RunStateError(RuntimeError):
    """A run folder that cannot be created or opened as asked."""


def new_run_id(name: str) -> str:
    return f"{name.lower()}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


class RunState:
    def __init__(self, folder: Path, run_id: str, recipe: Recipe, db: sqlite3.Connection):
        self.folder, self.run_id, self.recipe, self._db = folder, run_id, recipe, db
        self._seq = db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM records").fetchone()[0]
        self._commit_due = False  # journal rows written in this turn of the event loop, not yet committed

    # --- opening -------------------------------------------------------------------------------------

    @classmethod
    def create(cls, folder: str | Path, recipe: Recipe, *, run_id: str | None = None) -> RunState:
        folder = Path(folder)
        if folder.exists() and any(folder.iterdir()):
            raise RunStateError(f"{folder} already exists and is not empty; resume it with "
                                f"`iforge resume {folder}` or choose another folder")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "checkpoints").mkdir()
        run_id = run_id or new_run_id(recipe.name)
        dumped = recipe.model_dump(mode="json", exclude_none=True)
        (folder / "recipe.yaml").write_text(yaml.safe_dump(dumped, sort_keys=False, allow_unicode=True))
        info = {"run_id": run_id, "recipe": recipe.recipe, "created": time.time(), "schema": SCHEMA_VERSION}
        (folder / "run.json").write_text(json.dumps(info, indent=2) + "\n")
        return cls(folder, run_id, recipe, _connect(folder / "state.sqlite"))

    @classmethod
    def open(cls, folder: str | Path) -> RunState:
        folder = Path(folder)
        try:
            info = json.loads((folder / "run.json").read_text())
            text = (folder / "recipe.yaml").read_text()
        except FileNotFoundError as e:
            raise RunStateError(f"{folder} is not a run folder ({Path(e.filename).name} is missing)") from None
        if info.get("schema") != SCHEMA_VERSION:
            raise RunStateError(f"{folder}: run state schema {info.get('schema')} is not {SCHEMA_VERSION}")
        recipe = parse_recipe(yaml.safe_load(text), text=text, source=str(folder / "recipe.yaml"))
        return cls(folder, info["run_id"], recipe, _connect(folder / "state.sqlite"))

    def close(self) -> None:
        self._commit_journal()
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction, committed at its end (rolled back on an error); journal rows written
        before it are committed first, so a rollback here never takes them along."""
        self._commit_journal()
        with self._db:
            yield self._db

    def _journal(self, sql: str, row: tuple) -> None:
        """Write a journal row, committed at the end of this turn of the event loop with every other
        row written in it (at once when no loop runs).

        Why: a commit per row costs a WAL append and its index update, about a tenth of the run's CPU
        per LLM call when hundreds of answers come in together. A run killed inside the turn loses
        only rows whose answers the services keep too: the gateway answers the same idempotency key
        again without calling the provider, and dedup replays the same request id."""
        self._db.execute(sql, row)
        if self._commit_due:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._db.commit()
            return
        self._commit_due = True
        loop.call_soon(self._commit_journal)

    def _commit_journal(self) -> None:
        if self._commit_due:
            self._commit_due = False
            self._db.commit()

    # --- keys ----------------------------------------------------------------------------------------

    def call_key(self, stage: str, subject: str, attempt: int | str = 0) -> str:
        """The idempotency key of one LLM call: run id, stage, what it is for, which attempt."""
        return f"{self.run_id}/{stage}/{subject}/{attempt}"

    @staticmethod
    def stage_of(key: str) -> str:
        parts = key.split("/")
        return parts[1] if len(parts) > 2 else ""

    # --- the journal ---------------------------------------------------------------------------------

    def get_call(self, key: str) -> Completion | None | bool:
        """The stored completion; None for a call recorded as permanently failed; False if never made."""
        row = self._db.execute("SELECT texts, finish_reasons, prompt_tokens, completion_tokens, cost_usd, "
                               "cache_hit, model, error FROM calls WHERE key = ?", (key,)).fetchone()
        if row is None:
            return False
        if row[7] is not None:
            return None
        return Completion(tuple(json.loads(row[0])), tuple(FinishReason(r) for r in json.loads(row[1])),
                          row[2], row[3], row[4], bool(row[5]), row[6])

    def put_call(self, key: str, completion: Completion | None, *, error: str | None = None) -> None:
        c = completion or Completion((), ())
        self._journal("INSERT OR REPLACE INTO calls VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                      (key, self.stage_of(key), json.dumps(c.texts), json.dumps([str(r) for r in c.finish_reasons]),
                       c.prompt_tokens, c.completion_tokens, c.cost_usd, int(c.cache_hit), c.model, error, time.time()))

    def forget_calls(self, keys: Iterable[str]) -> None:
        """Drop calls from the journal: a resumed run makes them again."""
        with self.transaction():
            self._db.executemany("DELETE FROM calls WHERE key = ?", [(k,) for k in keys])

    def get_answer(self, key: str) -> Any:
        """A journaled non-LLM answer (dedup verdicts, similarity scores) as stored JSON, or None."""
        row = self._db.execute("SELECT body FROM answers WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_answer(self, key: str, value: Any) -> None:
        self._journal("INSERT OR REPLACE INTO answers VALUES (?,?,?)", (key, self.stage_of(key), json.dumps(value)))

    def get_verdicts(self, request_id: str) -> list[NoveltyVerdict] | None:
        body = self.get_answer(request_id)
        return None if body is None else [NoveltyVerdict(**v) for v in body]

    def put_verdicts(self, request_id: str, verdicts: Iterable[NoveltyVerdict]) -> None:
        self.put_answer(request_id, [{"id": v.id, "kept": v.kept, "reason": v.reason, "max_rouge_l": v.max_rouge_l,
                                      "max_cosine": v.max_cosine, "best_match": v.best_match} for v in verdicts])

    def get_execution(self, request_id: str) -> vf.ExecuteResponse | str | None:
        """A journaled execution: the verifier's response, the error text of a request it rejected, or
        None when it was never answered."""
        body = self.get_answer(request_id)
        if body is None:
            return None
        if "error" in body:
            return str(body["error"])
        return json_format.ParseDict(body["response"], vf.ExecuteResponse())

    def put_execution(self, request_id: str, answer: vf.ExecuteResponse | str) -> None:
        if isinstance(answer, str):
            self.put_answer(request_id, {"error": answer})
        else:
            body = json_format.MessageToDict(answer, preserving_proto_field_name=True)
            self.put_answer(request_id, {"response": body})

    # --- stages --------------------------------------------------------------------------------------

    def stage_done(self, name: str) -> StageStats | None:
        row = self._db.execute("SELECT status, stats FROM stages WHERE name = ?", (name,)).fetchone()
        return StageStats.from_dict(json.loads(row[1])) if row and row[0] == "done" else None

    def mark_started(self, name: str) -> None:
        with self.transaction():
            self._db.execute("INSERT OR IGNORE INTO stages VALUES (?, 'running', ?, NULL, NULL)", (name, time.time()))

    def mark_done(self, name: str, stats: StageStats) -> None:
        with self.transaction():
            self._db.execute("UPDATE stages SET status = 'done', finished = ?, stats = ? WHERE name = ?",
                             (time.time(), json.dumps(stats.to_dict()), name))

    def stages(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT name, status, started, finished, stats FROM stages ORDER BY started")
        return [{"name": r[0], "status": r[1], "started": r[2], "finished": r[3],
                 "stats": json.loads(r[4]) if r[4] else None} for r in rows]

    def checkpoint_path(self, name: str) -> Path:
        return self.folder / "checkpoints" / name

    # --- records -------------------------------------------------------------------------------------

    def put_records(self, stage: str, records: Iterable[Record], status: str, reason: str = "") -> None:
        """Upsert records with their latest status ("kept", "dropped", "final"); first insert order kept."""
        self.put_statuses(stage, ((r, status, reason) for r in records))

    def put_dropped(self, stage: str, dropped: Iterable[tuple[Record, str]]) -> None:
        self.put_statuses(stage, ((r, "dropped", reason) for r, reason in dropped))

    def put_statuses(self, stage: str, rows: Iterable[tuple[Record, str, str]]) -> None:
        with self.transaction():
            for r, status, reason in rows:
                self._db.execute(
                    "INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?,?) "
                    "ON CONFLICT(id) DO UPDATE SET stage=excluded.stage, status=excluded.status, "
                    "reason=excluded.reason, meta=excluded.meta",
                    (r.id, stage, status, reason, r.task, r.instruction, r.input, r.output,
                     json.dumps(dict(r.meta), ensure_ascii=False, default=str), self._seq))
                self._seq += 1

    def records(self, status: str | None = None) -> list[Record]:
        query = "SELECT id, task, instruction, input, output, meta FROM records"
        rows = self._db.execute(query + (" WHERE status = ? ORDER BY seq" if status else " ORDER BY seq"),
                                (status,) if status else ())
        return [Record(instruction=r[2], input=r[3], output=r[4], task=r[1], meta=json.loads(r[5]), id=r[0])
                for r in rows]

    def record_counts(self) -> dict[tuple[str, str, str], int]:
        rows = self._db.execute("SELECT stage, status, reason, COUNT(*) FROM records GROUP BY stage, status, reason")
        return {(r[0], r[1], r[2]): r[3] for r in rows}

    # --- usage ---------------------------------------------------------------------------------------

    def usage(self) -> dict[str, dict[str, float]]:
        """Calls, tokens and cost per stage, from the journal (replayed calls are not counted twice)."""
        rows = self._db.execute(
            "SELECT stage, COUNT(*), SUM(cache_hit), SUM(error IS NOT NULL), SUM(prompt_tokens), "
            "SUM(completion_tokens), SUM(cost_usd) FROM calls GROUP BY stage")
        return {r[0]: {"calls": r[1], "cache_hits": r[2], "failed": r[3], "prompt_tokens": r[4],
                       "completion_tokens": r[5], "cost_usd": r[6]} for r in rows}

    def models(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT model FROM calls WHERE model != '' ORDER BY model")]


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # a killed process loses nothing committed; WAL keeps it
    db.executescript(_SCHEMA)
    return db
