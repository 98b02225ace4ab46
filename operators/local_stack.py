"""The embedded Airflow stack on one machine: SQLite, LocalExecutor, SimpleAuthManager.

`python -m domainllm_operators.local_stack up`    start api-server + scheduler + dag-processor
`python -m domainllm_operators.local_stack demo`  start, trigger domain_llm, follow it (then, with
    --synopses, one flywheel cycle: demo traffic -> data_flywheel -> the training round it triggers), stop
`python -m domainllm_operators.local_stack dags-test --spec S`  `airflow dags test` in-process, same settings

Everything lives under $DOMAINLLM_HOME/airflow (database, logs, generated secrets).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from domainllm.env import OFFLINE_DEFAULTS, home

REPO = Path(__file__).resolve().parent.parent
USER = "admin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _secret(path: Path, factory) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(factory())
        path.chmod(0o600)
    return path.read_text().strip()


def airflow_env(airflow_home: Path, api_port: int) -> dict[str, str]:
    """Airflow settings for the embedded default (all through environment variables)."""
    passwords = airflow_home / "passwords.json"
    _secret(passwords, lambda: json.dumps({USER: secrets.token_urlsafe(12)}))
    env = {
        **os.environ,
        **{k: os.environ.get(k, v) for k, v in OFFLINE_DEFAULTS.items()},
        "DOMAINLLM_HOME": str(home()),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret(airflow_home / ".jwt_secret", lambda: secrets.token_urlsafe(32)),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
    }
    return env


class LocalStack:
    def __init__(self, api_port: int | None = None) -> None:
        self.airflow_home = home() / "airflow"
        self.port = api_port or free_port()
        self.env = airflow_env(self.airflow_home, self.port)
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._token: str | None = None

    @property
    def password(self) -> str:
        return json.loads((self.airflow_home / "passwords.json").read_text())[USER]

    def _airflow(self) -> list[str]:
        return [sys.executable, "-m", "airflow"]

    def start(self, timeout: float = 120) -> None:
        subprocess.run([*self._airflow(), "db", "migrate"], env=self.env, check=True, capture_output=True)
        logs = self.airflow_home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for name, args in (
            ("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(self.port)]),
            ("scheduler", ["scheduler"]),
            ("dag-processor", ["dag-processor"]),
        ):
            out = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
            self.procs[name] = subprocess.Popen(
                [*self._airflow(), *args], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                health = self.get("/api/v2/monitor/health", auth=False)
                if health.get("scheduler", {}).get("status") == "healthy":
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(1)
        raise TimeoutError(f"Airflow did not become healthy within {timeout:.0f}s; logs in {logs}")

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"airflow {name} exited with {proc.returncode}; see {self.airflow_home / 'logs' / (name + '.log')}"
                )

    def stop(self, grace: float = 15) -> None:
        # The scheduler can hang on SIGTERM waiting for idle workers: SIGKILL after grace.
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()

    # REST API -------------------------------------------------------------------------
    def token(self) -> str:
        if self._token is None:
            body = self._request("POST", "/auth/token", {"username": USER, "password": self.password}, auth=False)
            self._token = body["access_token"]
        return self._token

    def _request(self, method: str, path: str, body: Any = None, auth: bool = True) -> Any:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        with urllib.request.urlopen(req, timeout=30) as resp:
            payload = resp.read()
        return json.loads(payload) if payload else None

    def get(self, path: str, auth: bool = True) -> Any:
        return self._request("GET", path, auth=auth)

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                self.get(f"/api/v2/dags/{dag_id}")
                return
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
            time.sleep(1)
        raise TimeoutError(f"DAG {dag_id} was not parsed within {timeout:.0f}s (dag-processor log)")

    def unpause(self, dag_id: str) -> None:
        """A paused DAG runs nothing, and takes no Asset events."""
        self.wait_for_dag(dag_id)
        self._request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        self.unpause(dag_id)
        run = self._request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
        return run["dag_run_id"]

    def triggered_run(self, dag_id: str, after: str, timeout: float = 300) -> str:
        """The first run of `dag_id` an asset event started after the ISO time `after`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            runs = self.get(f"/api/v2/dags/{dag_id}/dagRuns?run_type=asset_triggered")["dag_runs"]
            for run in runs:
                if run["run_after"] >= after:
                    return run["dag_run_id"]
            time.sleep(2)
        raise TimeoutError(f"no asset-triggered run of {dag_id} started within {timeout:.0f}s")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """task id -> state; mapped tasks (one per shard) as `task_id[map_index]`."""
        tis = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {
            ti["task_id"] if ti.get("map_index", -1) < 0 else f"{ti['task_id']}[{ti['map_index']}]": ti["state"]
            for ti in tis
        }

    def follow(self, dag_id: str, run_id: str, timeout: float = 3600, echo=print) -> str:
        """Wait for the DAG run to end, printing task state changes; returns its state."""
        seen: dict[str, str | None] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            for task, state in self.task_states(dag_id, run_id).items():
                if seen.get(task, "?") != state:
                    echo(f"  {task:<24} {state}")
                    seen[task] = state
            state = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                return state
            time.sleep(2)
        raise TimeoutError(f"DAG run {run_id} did not finish within {timeout:.0f}s")


def _demo(args: argparse.Namespace) -> int:
    from domainllm_operators.demo_cycle import flywheel_cycle

    stack = LocalStack(args.port)
    print(f"starting Airflow (SQLite, LocalExecutor) in {stack.airflow_home} ...", flush=True)
    spec_path = str(Path(args.spec).resolve())
    cycle = None
    try:
        stack.start()
        conf = {"spec": spec_path, "run_id": args.run_id, "force": args.force}
        dag_run = stack.trigger("domain_llm", conf)
        print(f"triggered domain_llm, Airflow run {dag_run}; following it:", flush=True)
        state = stack.follow("domain_llm", dag_run)
        if state == "success" and args.synopses:
            cycle = flywheel_cycle(stack, spec_path, Path(args.synopses))
    finally:
        stack.stop()
    h = home()
    if cycle is not None:
        print(cycle.summary())
    print(
        f"\ndomain_llm finished: {state}\n"
        f"  artifacts:   {h / 'artifacts' / args.run_id}\n"
        f"  MLflow:      sqlite:///{h / 'mlflow' / 'mlflow.db'}  (browse: make mlflow-ui -> http://127.0.0.1:5000)\n"
        f"  Airflow:     make airflow-ui -> http://127.0.0.1:8080 (user {USER}, password in "
        f"{stack.airflow_home / 'passwords.json'})\n"
        f"  task logs:   {stack.airflow_home / 'logs'}"
    )
    return 0 if state == "success" and (cycle is None or cycle.ok) else 1


def _dags_test(args: argparse.Namespace) -> int:
    stack = LocalStack()
    subprocess.run([*stack._airflow(), "db", "migrate"], env=stack.env, check=True, capture_output=True)
    conf = {"spec": str(Path(args.spec).resolve()), "run_id": args.run_id, "force": args.force}
    return subprocess.run([*stack._airflow(), "dags", "test", "domain_llm", "-c", json.dumps(conf)], env=stack.env).returncode


def _up(args: argparse.Namespace) -> int:
    stack = LocalStack(args.port)
    stack.start()
    print(f"Airflow UI: {stack.url}  user {USER}, password {stack.password}  (Ctrl-C stops it)", flush=True)
    try:
        while True:
            stack._check_alive()
            time.sleep(2)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m domainllm_operators.local_stack", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="run the stack until Ctrl-C")
    up.add_argument("--port", type=int, default=8080)
    up.set_defaults(func=_up)
    demo = sub.add_parser("demo", help="start, trigger domain_llm, follow it, stop")
    demo.add_argument("--spec", required=True)
    demo.add_argument("--run-id", default="demo")
    demo.add_argument("--force", action="store_true")
    demo.add_argument("--port", type=int, default=None)
    demo.add_argument("--synopses", help="then one flywheel cycle: demo users ask about these modules (perl-synopses.jsonl)")
    demo.set_defaults(func=_demo)
    dags_test = sub.add_parser("dags-test", help="run domain_llm with `airflow dags test` (no scheduler)")
    dags_test.add_argument("--spec", required=True)
    dags_test.add_argument("--run-id", default="demo")
    dags_test.add_argument("--force", action="store_true")
    dags_test.set_defaults(func=_dags_test)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
