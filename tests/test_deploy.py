"""The deployment files parse, agree with each other, and carry a valid escalator config.

Docker and a cluster are not available to the test suite, so this checks what can be
checked without them: every manifest is valid YAML without duplicate keys (which plain
YAML loaders silently merge, hiding a lost volume mount or probe), the objects the guide
promises exist, names and selectors line up, every secret the Deployment reads is in the
Secret, and the ConfigMap's escalator.yaml passes escalator's own validation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from escalator.config import parse_config

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "deploy" / "kubernetes"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a mapping with the same key twice."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    repeated = {k for k in keys if keys.count(k) > 1}
    if repeated:
        raise yaml.constructor.ConstructorError(
            None, None, f"duplicate keys {sorted(map(str, repeated))}", node.start_mark
        )
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def _objects() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for doc in yaml.load_all(path.read_text(), Loader=_StrictLoader):
            if doc:
                assert doc["kind"] not in found, f"two {doc['kind']} objects"
                found[doc["kind"]] = doc
    return found


def test_manifests_are_consistent() -> None:
    objects = _objects()
    assert set(objects) == {"Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget"}
    deployment = objects["Deployment"]
    assert deployment["spec"]["replicas"] == 3
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert objects["Service"]["spec"]["selector"].items() <= labels.items()
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= (
        labels.items()
    )
    assert objects["PodDisruptionBudget"]["spec"]["minAvailable"] < 3

    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # Liveness must not depend on the database, or an outage restarts every replica.
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "0.0.0.0" in container["args"]
    secret_keys = set(objects["Secret"]["stringData"])
    env = {e["name"]: e for e in container["env"]}
    for name in ("ESCALATOR_DATABASE_URL", "ESCALATOR_WEBHOOK_TOKEN", "ESCALATOR_API_TOKEN"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == objects["Secret"]["metadata"]["name"]
        assert ref["key"] in secret_keys
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == objects["ConfigMap"]["metadata"]["name"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert env["ESCALATOR_CONFIG"]["value"] == f"{mount['mountPath']}/escalator.yaml"


def test_configmap_holds_a_valid_config_with_secrets_by_name() -> None:
    config_map = _objects()["ConfigMap"]
    text = config_map["data"]["escalator.yaml"]
    config = parse_config(text, "deploy/kubernetes/configmap.yaml")
    assert config.server.webhook_token is not None and config.server.webhook_token.env
    assert config.server.api_token is not None and config.server.api_token.env
    env = {
        e["name"]
        for e in _objects()["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    for secret in (config.server.webhook_token, config.server.api_token):
        assert secret.env in env, f"{secret.env} is read by the config but never set"


def test_dockerfile_runs_serve_as_non_root() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert '"--host", "0.0.0.0"' in text
    for copied in ("pyproject.toml", "README.md", "escalator", "migrations"):
        assert copied in text
