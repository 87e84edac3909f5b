"""Policy snapshots: an alert keeps the policy it started with, stored once by content hash."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from sqlalchemy.orm import Session

from escalator.config import Policy
from escalator.store.tables import PolicyRow


def policy_id(policy: Policy) -> str:
    body = json.dumps(policy.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


class PolicyCache:
    """Parsed policy snapshots by id; snapshots never change, so they never go stale."""

    def __init__(self) -> None:
        self._by_id: dict[str, Policy] = {}

    def get(self, session: Session, pid: str) -> Policy:
        policy = self._by_id.get(pid)
        if policy is None:
            row = session.get(PolicyRow, pid)
            if row is None:
                raise LookupError(f"policy snapshot {pid} missing from the store")
            policy = Policy.model_validate(row.body)
            self._by_id[pid] = policy
        return policy

    def ensure(self, session: Session, name: str, policy: Policy, now: datetime) -> str:
        pid = policy_id(policy)
        # Inserted in every opening transaction, never skipped on the strength of the cache:
        # a transaction that rolled back after inserting it would leave the cache believing
        # a row that does not exist, and every later alert would fail its foreign key.
        # ON CONFLICT DO NOTHING: two replicas (or HA webhook posts) opening the first alert
        # of a new policy at once must not fail one of them on the primary key.
        # The dialect's module is imported here, not at the top: a read-only CLI verb
        # parses snapshots but never writes one, and PostgreSQL's costs ~25 ms to import.
        if session.get_bind().dialect.name == "postgresql":
            from sqlalchemy.dialects import postgresql as dialect
        else:
            from sqlalchemy.dialects import sqlite as dialect  # type: ignore[no-redef]
        session.execute(
            dialect.insert(PolicyRow)
            .values(id=pid, name=name, body=policy.model_dump(mode="json"), created_at=now)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        self._by_id.setdefault(pid, policy)
        return pid
