"""The read models as a pure fold of the whole log, in memory: the tests' oracle.

Written apart from the projectors (whole log at once, plain dicts, one
function per read model) so that it checks them rather than repeats them:
every table a projector builds — after crashes, duplicates, rebalances or a
rebuild — must equal what these functions compute from the same records.

Input: decoded records with their positions; each partition's records must
be in offset order (records of different partitions may come in any order).
Output: one dict per row, keyed like the tables' columns, plus what was
rejected and why.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from runwire.log.records import SourceRecord

_ENDINGS = {"run_completed": "completed", "run_failed": "failed", "run_canceled": "canceled"}
_ENDED = frozenset(_ENDINGS.values())


@dataclass
class Folded:
    """Rows by key, tombstones (deleted sessions), and rejected (topic, partition, offset) -> reason.

    ``erased_rejected`` (runs only) holds the rejections of events of erased
    runs: a projector that applied the deletion first drops them instead, so
    a check accepts them either dead-lettered or not.
    """

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    tombstones: set[str] = field(default_factory=set)
    rejected: dict[tuple[str, int, int], str] = field(default_factory=dict)
    erased_rejected: dict[tuple[str, int, int], str] = field(default_factory=dict)


def _in_log_order(records: Iterable[SourceRecord]) -> list[SourceRecord]:
    return sorted(records, key=lambda r: (r.topic, r.partition, r.offset))


def fold_runs(
    records: Iterable[SourceRecord], run_topic: str, session_topic: str | None = None
) -> Folded:
    """``run_status`` rows of the records of ``run_topic``, without the runs of the sessions
    deleted on ``session_topic`` (when given; ``tombstones`` lists them).

    A run is its session's when its row names it (the first non-empty
    ``session_id`` of its applied events); a ``session_deleted`` counts when
    its record key is its session id, and erases the runs of its own tenant
    (or of none; every run when it names no tenant). The rejections of events
    of erased runs are in ``erased_rejected``, not ``rejected``.
    """
    out = Folded()
    seen: set[str] = set()
    run_of: dict[tuple[str, int, int], str] = {}
    records = list(records)
    deleted_by: dict[str, set[str | None]] = defaultdict(set)
    if session_topic is not None:
        for r in records:
            if (
                r.topic == session_topic
                and r.event.type.value == "session_deleted"
                and r.event.session_id is not None
                and r.key == r.event.session_id.encode()
            ):
                deleted_by[r.event.session_id].add(r.event.tenant)
        out.tombstones = set(deleted_by)
    for r in _in_log_order(r for r in records if r.topic == run_topic):
        e = r.event
        where = (r.topic, r.partition, r.offset)
        kind = e.type.value
        if e.event_id in seen:
            continue  # applied before: a duplicate changes nothing
        if e.run_id:
            run_of[where] = e.run_id
        if e.type.stream.value != "run":
            out.rejected[where] = "wrong_topic"
            continue
        if r.key is None or r.key.decode(errors="replace") != e.run_id:
            out.rejected[where] = "key_mismatch"
            continue
        run = out.rows.get(e.run_id or "")
        if run and run["tenant"] and e.tenant and e.tenant != run["tenant"]:
            out.rejected[where] = "tenant_mismatch"  # another tenant's event on the run's id
            continue
        awaiting: list[str] = run["pending_tool_uses"] if run else []
        body = e.payload.model_dump()
        if kind == "tool_use" and body["id"] in awaiting:
            out.rejected[where] = "duplicate_tool_use_id"
            continue
        if kind == "tool_result" and not body["tool_use_id"]:
            out.rejected[where] = "empty_tool_result_id"
            continue
        if kind == "tool_result" and body["tool_use_id"] not in awaiting:
            out.rejected[where] = "unknown_tool_use"
            continue
        seen.add(e.event_id)
        if run is None:
            run = out.rows[e.run_id or ""] = {
                "run_id": e.run_id,
                "status": "pending",
                "phase": None,
                "status_reason": None,
                "labels": {},
                "started_at": e.occurred_at,
                "updated_at": e.occurred_at,
                "ended_at": None,
                "last_error": None,
                "pending_tool_uses": awaiting,
                "awaiting_approval": [],
                "log_partition": r.partition,
                "first_offset": r.offset,
                "parent_run_id": None,
                **dict.fromkeys(("session_id", "agent_id", "turn_id", "user_id", "tenant")),
                **dict.fromkeys(
                    (
                        "message_count",
                        "tool_call_count",
                        "tool_error_count",
                        "input_tokens",
                        "output_tokens",
                        "cache_read_tokens",
                        "cache_write_tokens",
                        "event_count",
                    ),
                    0,
                ),
            }
        for name in ("session_id", "agent_id", "user_id", "tenant"):
            if not run[name]:
                run[name] = getattr(e, name)
        if e.turn_id:
            run["turn_id"] = e.turn_id
        run["labels"] = {**run["labels"], **e.labels}
        run["event_count"] += 1
        run["updated_at"] = max(run["updated_at"], e.occurred_at)
        run["last_offset"] = r.offset
        ended = run["status"] in _ENDED
        if kind == "run_started":
            run["agent_id"] = run["agent_id"] or body["agent_id"]
            run["parent_run_id"] = run["parent_run_id"] or body["parent_run_id"]
            run["labels"] = {**run["labels"], **body["labels"]}
        elif kind == "run_status_changed" and not ended:
            run["status"] = body["status"].value
            if body["phase"] is not None:
                run["phase"] = body["phase"].value
            run["status_reason"] = body["reason"]
            if run["status"] in _ENDED:
                run["ended_at"] = e.occurred_at
            elif run["awaiting_approval"]:
                run["phase"] = "awaiting_approval"
        elif kind == "approval_requested":
            if body["tool_use_id"] not in run["awaiting_approval"]:
                run["awaiting_approval"] = [*run["awaiting_approval"], body["tool_use_id"]]
            if not ended:
                run["phase"] = "awaiting_approval"
        elif kind == "approval_decided":
            if body["tool_use_id"] in run["awaiting_approval"]:
                run["awaiting_approval"] = [
                    t for t in run["awaiting_approval"] if t != body["tool_use_id"]
                ]
                if not run["awaiting_approval"] and not ended:
                    run["phase"] = "executing_tools"
        elif kind in _ENDINGS and not ended:
            run["status"] = run["phase"] = _ENDINGS[kind]
            run["ended_at"] = e.occurred_at
            run["status_reason"] = body.get("stop_reason", body.get("reason"))
            if kind == "run_failed":
                run["status_reason"] = body["error_kind"]
                run["last_error"] = {
                    "kind": body["error_kind"],
                    "message": body["message"],
                    "retryable": body["retryable"],
                    "event_id": e.event_id,
                }
        elif kind == "tool_use":
            run["tool_call_count"] += 1
            run["pending_tool_uses"] = [*awaiting, body["id"]]
        elif kind == "tool_result":
            run["pending_tool_uses"] = [t for t in awaiting if t != body["tool_use_id"]]
            run["tool_error_count"] += int(body["is_error"])
        elif kind == "usage":
            for name in ("input", "output", "cache_read", "cache_write"):
                run[f"{name}_tokens"] += body[f"{name}_tokens"]
        elif kind in ("user_message", "assistant_text"):
            run["message_count"] += 1
    # A session is its tenant's: a deletion erases the runs of its tenant (or of
    # none), all of them when it names no tenant, never another tenant's.
    erased = {
        k
        for k, row in out.rows.items()
        if any(
            by is None or row["tenant"] is None or by == row["tenant"]
            for by in deleted_by.get(row["session_id"], ())
        )
    }
    for run_id in erased:
        del out.rows[run_id]
    for where in [w for w in out.rejected if run_of.get(w) in erased]:
        out.erased_rejected[where] = out.rejected.pop(where)
    return out


def fold_sessions(records: Iterable[SourceRecord], session_topic: str) -> Folded:
    """``session_index`` rows (and tombstones) of session-events and run-events records.

    Session-topic records are folded first, then run-topic ones: the
    projector interleaves the topics however they arrive, and must agree.
    A session is its tenant's: another tenant's session event on its id is
    rejected (``tenant_mismatch``).
    """
    out = Folded()
    ordered = _in_log_order(records)
    session_records = [r for r in ordered if r.topic == session_topic]
    run_records = [r for r in ordered if r.topic != session_topic]
    declared: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for r in session_records:
        e = r.event
        where = (r.topic, r.partition, r.offset)
        if e.event_id in seen:
            continue
        if e.type.stream.value != "session":
            out.rejected[where] = "wrong_topic"
            continue
        if r.key is None or r.key.decode(errors="replace") != e.session_id:
            out.rejected[where] = "key_mismatch"
            continue
        sid = e.session_id or ""
        if sid in out.tombstones:
            seen.add(e.event_id)
            continue
        # A session is its tenant's: its declaration's, or before one the first
        # tenant its session events name; another tenant's event is rejected.
        owner = declared.get(sid, {}).get("declared_tenant")
        if owner and e.tenant and e.tenant != owner:
            out.rejected[where] = "tenant_mismatch"
            continue
        seen.add(e.event_id)
        s = declared.setdefault(sid, _undeclared())
        s["declared_tenant"] = owner or e.tenant
        s["times"].append(e.occurred_at)
        s["labels"] = {**s["labels"], **e.labels}
        body = e.payload.model_dump()
        kind = e.type.value
        if kind == "session_created" and "declared_at" not in s:
            s["declared_at"] = e.occurred_at
            s["declared_user_id"] = body["user_id"] or e.user_id
            s["metadata"] = {**s["metadata"], **body["metadata"]}
        elif kind == "session_metadata_set":
            if body["value"] is None:
                s["metadata"].pop(body["key"], None)
            else:
                s["metadata"][body["key"]] = body["value"]
        elif kind == "session_ended" and s["status"] != "ended":
            s["status"], s["ended_at"] = "ended", e.occurred_at
        elif kind == "session_cleared":
            s["cleared_at"] = e.occurred_at
        elif kind == "session_forked" and "parent_session_id" not in s:
            s["parent_session_id"] = body["parent_session_id"]
            s["fork"] = {k: body[k] for k in ("turn", "run_ids", "through_offset", "cuts")}
        elif kind == "session_deleted":
            out.tombstones.add(sid)
            del declared[sid]
        elif kind == "session_writer_claimed":
            # Taken when no other holder's claim is still open and the version fits.
            held = s["writer"] is not None and (
                s["writer_until"] is None or e.occurred_at < s["writer_until"]
            )
            if (not held or s["writer"] == body["holder"]) and body["expected_version"] in (
                None,
                s["version"],
            ):
                s["writer"] = body["holder"]
                lease = body["lease_ms"]
                s["writer_until"] = (
                    None if lease is None else e.occurred_at + timedelta(milliseconds=lease)
                )
        elif kind == "session_writer_released" and s["writer"] == body["holder"]:
            s["writer"] = s["writer_until"] = None
            if body["committed"]:
                s["version"] += 1
                s["version_by"] = body["holder"]
    activity: dict[str, list[Any]] = defaultdict(list)
    starts: dict[str, list[tuple[Any, str, str | None, str | None]]] = defaultdict(list)
    for r in run_records:
        e = r.event
        where = (r.topic, r.partition, r.offset)
        started = e.type.value == "run_started"
        if started and e.event_id in seen:
            continue  # only run_started counts; other run events move maxima
        if e.type.stream.value != "run":
            out.rejected[where] = "wrong_topic"
            continue
        if r.key is None or r.key.decode(errors="replace") != e.run_id:
            out.rejected[where] = "key_mismatch"
            continue
        if started:
            seen.add(e.event_id)
        run_sid = e.session_id
        if run_sid is None or run_sid in out.tombstones:
            continue
        activity[run_sid].append(e.occurred_at)
        if started:
            starts[run_sid].append((e.occurred_at, e.run_id or "", e.user_id, e.tenant))
    for sid in set(declared) | set(activity):
        s = declared.get(sid, _undeclared())
        times = s["times"] + activity.get(sid, [])
        runs = sorted(starts.get(sid, []))
        first_run = runs[0] if runs else (None, None, None, None)
        out.rows[sid] = {
            "session_id": sid,
            "user_id": s.get("declared_user_id") or first_run[2],
            "tenant": s.get("declared_tenant") or first_run[3],
            "metadata": s["metadata"],
            "labels": s["labels"],
            "status": s["status"],
            "created_at": s.get("declared_at") or min(times),
            "ended_at": s.get("ended_at"),
            "cleared_at": s.get("cleared_at"),
            "last_activity_at": max(times),
            "run_count": len(runs),
            "last_run_id": runs[-1][1] if runs else None,
            "last_run_at": runs[-1][0] if runs else None,
            "version": s["version"],
            "writer": s["writer"],
            "writer_until": s["writer_until"],
            "version_by": s["version_by"],
            "parent_session_id": s.get("parent_session_id"),
            "fork": s.get("fork"),
        }
    return out


def _undeclared() -> dict[str, Any]:
    """What a session is before its events say more."""
    return {
        "metadata": {},
        "labels": {},
        "status": "active",
        "ended_at": None,
        "times": [],
        "version": 0,
        "writer": None,
        "writer_until": None,
        "version_by": None,
    }
