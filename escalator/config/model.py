"""The root of the YAML configuration, assembled from one module per concept.

Validation is strict (unknown keys are errors: a typo in `conditon:` must not silently
fall back to a default at 3 a.m.) and every error names the file, the path inside it and,
where the YAML parser can tell, the line.
"""

from __future__ import annotations

from pydantic import Field

from escalator.config.base import Identifier, Strict
from escalator.config.channels import Channels
from escalator.config.incidents import Incidents, Runbook
from escalator.config.people import Person, Team
from escalator.config.policies import Policy, Route, Target
from escalator.config.roster import Rotation
from escalator.config.server import Engine, Server
from escalator.config.sources import Heartbeat, Integration, RecurringMaintenance


class Config(Strict):
    server: Server = Server()
    engine: Engine = Engine()
    people: list[Person] = Field(default_factory=list)
    teams: list[Team] = Field(default_factory=list)
    rotations: list[Rotation] = Field(default_factory=list)
    roles: dict[Identifier, list[Target]] = Field(default_factory=dict)
    policies: dict[Identifier, Policy] = Field(min_length=1)
    routes: list[Route] = Field(default_factory=list)
    default_policy: str | None = None
    channels: Channels = Channels()
    incidents: Incidents = Incidents()
    runbooks: dict[str, Runbook] = Field(default_factory=dict)
    heartbeats: list[Heartbeat] = Field(default_factory=list)
    integrations: list[Integration] = Field(default_factory=list)
    maintenance: list[RecurringMaintenance] = Field(default_factory=list)

    def heartbeat(self, name: str) -> Heartbeat | None:
        return next((h for h in self.heartbeats if h.name == name), None)

    def person(self, person_id: str) -> Person | None:
        return next((p for p in self.people if p.id == person_id), None)

    def team(self, team_id: str) -> Team | None:
        return next((t for t in self.teams if t.id == team_id), None)

    def rotation(self, rotation_id: str) -> Rotation | None:
        return next((r for r in self.rotations if r.id == rotation_id), None)

    def route(self, labels: dict[str, str]) -> str | None:
        """The policy for an alert: first matching route, else `default_policy`, else severity."""
        for route in self.routes:
            if route.matches(labels):
                return route.policy
        if self.default_policy:
            return self.default_policy
        severity = labels.get("severity")
        return severity if severity in self.policies else None
