"""docker-compose.yml, checked offline (no Docker engine here): with the variables of
.env.example it is a valid Compose file (compose-spec's strict parser: unknown keys, wrong
types, undefined volumes or configs fail); every secret comes from .env and a missing one
stops compose with a message; every long-running service has a healthcheck and a restart
policy; ports bind to localhost; everything that shares the home volume runs as one uid; images are ours, built from images/; the spec it runs loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from compose_spec import PyOptions

from domainllm.spec import load_spec
from tests.conftest import REPO

COMPOSE = REPO / "docker-compose.yml"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}")


class MissingVariable(ValueError):
    pass


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?message}` (compose-spec parses the
    file as written, before interpolation)."""

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.groups()
        if op == ":?" and not env.get(name):
            raise MissingVariable(f"{name}: {arg}")
        return env.get(name) or (arg if op == ":-" else "")

    return _VAR.sub(sub, text)


def env_example() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines() if line and not line.startswith("#")]
    env = dict(pairs)
    return {k: v or f"example-{k.lower()}" for k, v in env.items()}  # the secrets are left empty on purpose


def test_valid_with_the_example_environment() -> None:
    compose = PyOptions(apply_merge=True).from_yaml(interpolate(COMPOSE.read_text(), env_example()))
    compose.validate()
    assert set(compose.service_names()) == {"postgres", "home-init", "airflow-init", "airflow-api-server", "airflow-scheduler",
                                            "airflow-dag-processor", "airflow-triggerer", "mlflow", "vllm", "gateway"}


def test_the_strict_parser_catches_mistakes() -> None:
    text = interpolate(COMPOSE.read_text(), env_example())
    with pytest.raises(ValueError, match="restrat"):
        PyOptions(apply_merge=True).from_yaml(text.replace("postgres:17.2-bookworm\n    restart:", "postgres:17.2-bookworm\n    restrat:"))
    broken = PyOptions(apply_merge=True).from_yaml(text.replace("source: routes", "source: routez"))
    with pytest.raises(ValueError, match="config `routez`"):
        broken.validate()


def test_named_volumes_and_dependencies_exist() -> None:
    """What compose-spec leaves to the engine: named volumes declared, `depends_on` targets real."""
    doc = yaml.safe_load(interpolate(COMPOSE.read_text(), env_example()))
    services = doc["services"]
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            assert source.startswith((".", "/")) or source in doc["volumes"], f"{name}: volume {source!r} is not declared"
        for target in service.get("depends_on", {}):
            assert target in services and target != name, f"{name} depends on {target!r}"


def test_every_secret_comes_from_env_and_a_missing_one_is_named() -> None:
    text = COMPOSE.read_text()
    required = {m.group(1) for m in _VAR.finditer(text) if m.group(2) == ":?"}
    assert required == {"POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET"}
    assert required <= set(env_example())
    with pytest.raises(MissingVariable, match="set POSTGRES_PASSWORD in .env"):
        interpolate(text, {k: v for k, v in env_example().items() if k != "POSTGRES_PASSWORD"})
    doc = yaml.safe_load(text)
    for name, service in doc["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|FERNET|TOKEN", key):
                assert str(value).startswith("${"), f"{name}: {key} must come from .env"
    for password in re.findall(r"://[^:/\s]+:([^@\s]+)@", text):  # credentials inside URLs
        assert password.startswith("${POSTGRES_PASSWORD"), password
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()


def test_services_are_supervised_and_local() -> None:
    doc = yaml.safe_load(interpolate(COMPOSE.read_text(), env_example()))  # resolves the `<<:` merges
    for name, service in doc["services"].items():
        if name in ("home-init", "airflow-init"):  # one-shot
            assert service["restart"] == "no"
            continue
        assert service["restart"] == "unless-stopped", name
        if name != "gateway":  # the gateway waits on vLLM's health; its own is the image's HEALTHCHECK
            assert service["healthcheck"]["test"][0] == "CMD", name
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port} would listen on every interface"
        if name != "postgres":
            assert service["image"].startswith("domainllm/"), name
    assert doc["services"]["airflow-scheduler"]["build"]["args"] == {"DOMAINLLM_EXTRAS": "all"}
    sharing = [n for n, s in doc["services"].items() if any(v.startswith("home:") for v in s.get("volumes", []))]
    assert {doc["services"][n].get("user", "50000:0") for n in sharing if n != "home-init"} == {"50000:0"}
    assert doc["services"]["vllm"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    spec_path = doc["services"]["airflow-scheduler"]["environment"]["DOMAINLLM_SPEC"]
    spec = load_spec(REPO / Path(spec_path).relative_to("/opt/domainllm"))
    assert spec.tracking.uri == "http://mlflow:5000" and not spec.serving.enabled
