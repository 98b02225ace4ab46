"""docker-compose.yml, checked offline (no Docker engine here): with the variables of
.env.example it is a valid Compose file (compose-spec's strict parser: unknown keys, wrong
types, undefined volumes or configs fail); every secret comes from .env and a missing one
stops compose with a message; every long-running service has a healthcheck and a restart
policy; ports bind to localhost; everything that shares the home volume runs as one uid; images are ours, built from images/; the spec it runs loads.
Safe by default: the secrets .env does not hold are made once by `secrets-init` (its script
run here) and mounted only where needed; the gateway requires API keys and a signing secret
and serves its admin port on localhost; vLLM requires the gateway's key; MLflow requires
sign-in and Airflow signs in; Airflow's development auth manager is named, on localhost."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from compose_spec import PyOptions

from domainllm.cli.main import build_parser
from domainllm.serve.gateway.auth import add_key, read_keys
from domainllm.serve.gateway.ids import read_signing_secrets
from domainllm.serve.gateway.server import BACKEND_KEY_ENV
from domainllm.spec import load_spec
from tests.conftest import REPO

COMPOSE = REPO / "docker-compose.yml"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}")


class MissingVariable(ValueError):
    pass


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?message}`, and `$$` for a `$` the
    container's shell sees (compose-spec parses the file as written, before interpolation)."""

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.groups()
        if op == ":?" and not env.get(name):
            raise MissingVariable(f"{name}: {arg}")
        return env.get(name) or (arg if op == ":-" else "")

    return "$".join(_VAR.sub(sub, part) for part in text.split("$$"))


def compose() -> dict:
    """The file as the engine gets it: interpolated with .env.example's variables, merges resolved."""
    return yaml.safe_load(interpolate(COMPOSE.read_text(), env_example()))


def env_example() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines() if line and not line.startswith("#")]
    env = dict(pairs)
    return {k: v or f"example-{k.lower()}" for k, v in env.items()}  # the secrets are left empty on purpose


def test_valid_with_the_example_environment() -> None:
    compose = PyOptions(apply_merge=True).from_yaml(interpolate(COMPOSE.read_text(), env_example()))
    compose.validate()
    assert set(compose.service_names()) == {"postgres", "home-init", "secrets-init", "airflow-init", "airflow-api-server", "airflow-scheduler",
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
        if name in ("home-init", "secrets-init", "airflow-init"):  # one-shot
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


def run_secrets_init(root: Path) -> None:
    command = compose()["services"]["secrets-init"]["command"]
    assert command[-1] == "/run/domainllm"
    subprocess.run([sys.executable, *command[1:-1], str(root)], check=True, timeout=60)


def shell_entrypoint(service: dict, root: Path, *command: str, env: dict[str, str] | None = None) -> str:
    """Runs a service's `sh -c` entrypoint with its secrets volume at `root` and `command` in
    place of the service's own; returns what that command printed."""
    shell, flag, script, name = service["entrypoint"]
    done = subprocess.run([shell, flag, script.replace("/run/domainllm", str(root)), name, *command], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", **(env or {})}, check=True, timeout=30)  # fmt: skip
    return done.stdout


def test_secrets_are_made_once_and_each_mounted_only_where_needed(tmp_path: Path) -> None:
    services = compose()["services"]
    run_secrets_init(tmp_path)
    made = {p.relative_to(tmp_path).as_posix(): p.read_text() for p in tmp_path.rglob("*") if p.is_file()}
    assert set(made) == {"mlflow-auth/admin-password", "mlflow-auth/flask-secret-key", "mlflow-client/credentials",
                         "vllm/api-key", "gateway/backend-api-key", "gateway/signing.secret", "gateway/keys.json"}
    assert all(p.stat().st_mode & 0o077 == 0 for p in tmp_path.rglob("*"))
    run_secrets_init(tmp_path)  # a restart keeps them
    assert {p.relative_to(tmp_path).as_posix(): p.read_text() for p in tmp_path.rglob("*") if p.is_file()} == made
    mounted = {name: sorted(v for v in s.get("volumes", []) if v.startswith(("mlflow-auth:", "mlflow-client:", "gateway-auth:", "vllm-auth:")))
               for name, s in services.items()}  # fmt: skip
    assert {name: v for name, v in mounted.items() if v and name != "secrets-init"} == {
        **{n: ["mlflow-client:/home/airflow/.mlflow:ro"] for n in ("airflow-init", "airflow-api-server", "airflow-scheduler",
                                                                     "airflow-dag-processor", "airflow-triggerer")},
        "mlflow": ["mlflow-auth:/run/domainllm/mlflow-auth:ro"], "vllm": ["vllm-auth:/run/domainllm/vllm:ro"],
        "gateway": ["gateway-auth:/run/domainllm/gateway:ro"]}  # fmt: skip


def test_the_gateway_requires_keys_and_keeps_its_admin_port_local(tmp_path: Path) -> None:
    gateway = compose()["services"]["gateway"]
    args = build_parser().parse_args(gateway["command"][1:])  # the gateway's own CLI takes them
    assert (str(args.keys), str(args.signing_secret)) == ("/run/domainllm/gateway/keys.json", "/run/domainllm/gateway/signing.secret")
    assert (args.port, args.admin_host, args.admin_port) == (8800, "0.0.0.0", 8801)
    assert gateway["ports"] == ["127.0.0.1:8800:8800", "127.0.0.1:8801:8801"]
    run_secrets_init(tmp_path)
    assert read_keys(tmp_path / "gateway" / "keys.json").keys == ()  # valid and empty: no key, no answer
    assert len(read_signing_secrets(tmp_path / "gateway" / "signing.secret")) == 1
    add_key(tmp_path / "gateway" / "keys.json", "alice")  # what the documented `docker compose run ... keys add` does
    assert [k.id for k in read_keys(tmp_path / "gateway" / "keys.json").keys] == ["alice"]
    # the gateway gets vLLM's key, and vLLM requires it
    sent = shell_entrypoint(gateway, tmp_path, "sh", "-c", f'echo "${BACKEND_KEY_ENV}"')
    required = shell_entrypoint(compose()["services"]["vllm"], tmp_path, "sh", "-c", 'echo "$VLLM_API_KEY"')
    assert sent == required == (tmp_path / "vllm" / "api-key").read_text() + "\n" and len(sent) > 32
    assert compose()["services"]["vllm"]["command"][:2] == ["/opt/vllm/bin/vllm", "serve"]


def test_mlflow_requires_sign_in_and_airflow_signs_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.utils.credentials import read_mlflow_creds

    services = compose()["services"]
    mlflow = services["mlflow"]
    run_secrets_init(tmp_path)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "mlflow").write_text('#!/bin/sh\necho "$@"; env | grep ^MLFLOW_ | sort\n')
    (tmp_path / "bin" / "mlflow").chmod(0o755)
    ini = tmp_path / "mlflow-auth.ini"
    ini.write_text(yaml.safe_load(COMPOSE.read_text())["configs"]["mlflow-auth"]["content"])
    script = mlflow["entrypoint"][2].replace("/etc/domainllm/mlflow-auth.ini", str(ini))
    written = tmp_path / "basic_auth.ini"
    env = {**{k: v for k, v in mlflow["environment"].items() if k != "MLFLOW_AUTH_CONFIG_PATH"}, "MLFLOW_AUTH_CONFIG_PATH": str(written),
           "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"}  # fmt: skip
    out = shell_entrypoint({**mlflow, "entrypoint": [*mlflow["entrypoint"][:2], script, "mlflow"]}, tmp_path, *mlflow["command"], env=env)
    argv, *lines = out.splitlines()
    assert argv.split()[:3] == ["server", "--app-name", "basic-auth"]
    seen = dict(line.split("=", 1) for line in lines)
    password = (tmp_path / "mlflow-auth" / "admin-password").read_text()
    assert seen["MLFLOW_AUTH_ADMIN_USERNAME"] == "admin" and seen["MLFLOW_AUTH_ADMIN_PASSWORD"] == password
    assert seen["MLFLOW_FLASK_SERVER_SECRET_KEY"] == (tmp_path / "mlflow-auth" / "flask-secret-key").read_text()
    auth = configparser.ConfigParser()
    auth.read(written)
    assert auth["mlflow"]["default_permission"] == "NO_PERMISSIONS"
    assert auth["mlflow"]["database_uri"] == mlflow["environment"]["MLFLOW_AUTH_DATABASE_URI"]
    # Airflow (and the stages it runs) read MLflow's credentials file from the mlflow-client volume
    home = tmp_path / "airflow-home"
    (home / ".mlflow").mkdir(parents=True)
    (home / ".mlflow" / "credentials").write_text((tmp_path / "mlflow-client" / "credentials").read_text())
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    assert read_mlflow_creds() == ("admin", password)


def test_airflow_keeps_the_development_auth_manager_on_localhost_only() -> None:
    services = compose()["services"]
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        assert services[name]["environment"]["AIRFLOW__CORE__AUTH_MANAGER"].endswith(".SimpleAuthManager"), name
        assert "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS" not in services[name]["environment"]
    assert services["airflow-api-server"]["ports"] == ["127.0.0.1:8080:8080"]
    assert "one machine" in COMPOSE.read_text().split("\n\n")[0]
