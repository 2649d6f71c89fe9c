"""The container set-up without any tool: the Dockerfile (hadolint-like checks), the secrets in
docker-compose.yml, the demo monitor's derived configuration, and prometheus/prometheus.yml
(compose) kept in step with prometheus/prometheus-demo.yml (`make demo`).

`docker-compose config` and promtool run in tests/integration/test_compose.py."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from cxprobe.settings import load_config

ROOT = Path(__file__).resolve().parents[2]
SANDBOX_ENV = {
    "CXPROBE_SANDBOX_IMAP_PASSWORD": "probe-secret",
    "CXPROBE_SANDBOX_TWILIO_TOKEN": "sandbox-auth-token-not-a-secret",
    "CXPROBE_SANDBOX_PEER_TOKEN": "sandbox-peer-token-not-a-secret",
    "CXPROBE_SANDBOX_PEER_SECRET": "sandbox-peer-app-secret",
}
#: The secrets config/example.yaml names.
EXAMPLE_SECRETS = (
    "PROBE_SMTP_PASSWORD",
    "PROBE_IMAP_PASSWORD",
    "TWILIO_AUTH_TOKEN",
    "MESSENGER_PAGE_TOKEN",
    "MESSENGER_APP_SECRET",
)
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$", re.IGNORECASE)
# ${VAR} or ${VAR:?message}: a reference without a default, so no value is written here.
ENV_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:?\?[^}]*)?\}$")


# --- Dockerfile ------------------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arguments for name, arguments in self.instructions if name == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None


def _dockerfile_stages(text: str) -> list[Stage]:
    """The Dockerfile's stages: instructions with their continuation lines joined (comment lines
    inside a continuation are dropped, as Docker does)."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or (not line.strip() and not pending):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends in a line continuation"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, arguments = line.strip().partition(" ")
        keyword, arguments = keyword.upper(), arguments.strip()
        if keyword == "FROM":
            words = arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name=name, base=words[0]))
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append((keyword, arguments))
    return stages


def _exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list), arguments
    return [str(item) for item in value]


def _effective(stages: list[Stage], stage: Stage, keyword: str) -> str | None:
    """An instruction's value in ``stage``, inherited through the stages it is built FROM."""
    by_name = {candidate.name: candidate for candidate in stages}
    current: Stage | None = stage
    while current is not None:
        value = current.last(keyword)
        if value is not None:
            return value
        current = by_name.get(current.base)
    return None


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return _dockerfile_stages((ROOT / "Dockerfile").read_text())


def test_image_is_python_311_slim_on_bookworm(stages: list[Stage]) -> None:
    assert stages[0].base == "python:3.11-slim-bookworm"
    # Every other stage builds on one of this file's stages.
    assert all(stage.base in {s.name for s in stages} for stage in stages[1:])


def test_default_target_is_the_monitor_running_as_a_non_root_user(stages: list[Stage]) -> None:
    default = stages[-1]
    assert default.name == "cxprobe"
    user = _effective(stages, default, "USER")
    assert user is not None and user.split(":")[0] not in {"root", "0"}, user
    created = " ".join(_effective_runs(stages, default))
    assert re.search(rf"useradd\b[^&]*\b{re.escape(user)}\b", created), "USER is never created"


def _effective_runs(stages: list[Stage], stage: Stage) -> list[str]:
    by_name = {candidate.name: candidate for candidate in stages}
    chain: list[Stage] = []
    current: Stage | None = stage
    while current is not None:
        chain.insert(0, current)
        current = by_name.get(current.base)
    return [run for link in chain for run in link.all("RUN")]


def test_chromium_comes_from_debian_and_no_browser_is_downloaded(stages: list[Stage]) -> None:
    instructions = [arguments for stage in stages for _, arguments in stage.instructions]
    assert not any(re.search(r"playwright\s+install", line) for line in instructions)
    # No tool that fetches from the network at build or run time beyond apt and pip.
    assert not any(re.search(r"\b(curl|wget)\b", line) for line in instructions)
    runs = _effective_runs(stages, stages[-1])
    apt = [run for run in runs if "apt-get install" in run]
    assert any(re.search(r"\bchromium\b", run) for run in apt), apt
    assert all("--no-install-recommends" in run for run in apt), apt
    assert any(re.search(r"\bpip install \.(\s|$)", run) for run in runs), runs


def test_monitor_entrypoint_port_healthcheck_and_volume(stages: list[Stage]) -> None:
    default = stages[-1]
    entrypoint = _effective(stages, default, "ENTRYPOINT")
    command = _effective(stages, default, "CMD")
    assert entrypoint is not None and command is not None
    assert _exec_form(entrypoint) + _exec_form(command) == [
        "cxprobe",
        "run",
        "-c",
        "/etc/cxprobe/config.yaml",
    ]
    assert "9464" in (_effective(stages, default, "EXPOSE") or "").split()
    healthcheck = _effective(stages, default, "HEALTHCHECK") or ""
    assert "http://127.0.0.1:9464/healthz" in healthcheck
    volume = _effective(stages, default, "VOLUME") or ""
    assert "/var/lib/cxprobe" in volume.split()
    # The evidence store's volume belongs to the service user.
    assert any(
        "chown cxprobe:cxprobe /var/lib/cxprobe" in run for run in _effective_runs(stages, default)
    )


def test_sandbox_target_adds_dovecot_and_runs_the_demo_profile(stages: list[Stage]) -> None:
    (sandbox,) = [stage for stage in stages if stage.name == "sandbox"]
    assert any("dovecot-imapd" in run for run in sandbox.all("RUN"))
    entrypoint = _effective(stages, sandbox, "ENTRYPOINT")
    command = _effective(stages, sandbox, "CMD")
    assert entrypoint is not None and command is not None
    argv = _exec_form(entrypoint) + _exec_form(command)
    assert argv[:3] == ["python", "-m", "sandbox"]
    profile = argv[argv.index("--profile") + 1]
    assert (ROOT / "sandbox" / "profiles" / "demo.yaml").samefile(ROOT / profile)
    assert _effective(stages, sandbox, "WORKDIR") == "/opt/cxprobe"  # profile paths start there


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_build() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".env", "*.env", ".git", ".venv", "data"} <= ignored


# --- docker-compose.yml, as written ----------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    return document


def _environment(service: dict[str, Any]) -> dict[str, str | None]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        pairs = [entry.partition("=") for entry in environment]
        return {name: value if separator else None for name, separator, value in pairs}
    return {name: None if value is None else str(value) for name, value in environment.items()}


def test_production_secrets_are_never_written_in_the_compose_file(
    compose: dict[str, Any],
) -> None:
    checked = 0
    for name, service in compose["services"].items():
        if service.get("profiles"):
            continue
        for variable, value in _environment(service).items():
            if not SECRET_NAME.search(variable):
                continue
            checked += 1
            # Passed through by name (from the shell or .env), or a ${VAR} without a default.
            assert value is None or ENV_REFERENCE.match(value), (name, variable, value)
    assert checked >= 6  # the monitor's and Grafana's


def test_demo_credentials_are_only_the_sandbox_fixtures(compose: dict[str, Any]) -> None:
    fixtures = (ROOT / "sandbox" / "profiles" / "demo.yaml").read_text()
    demo = compose["services"]["cxprobe-demo"]
    environment = _environment(demo)
    assert environment == SANDBOX_ENV
    for value in environment.values():
        assert value is not None and value in fixtures


def test_grafana_admin_password_has_no_default(compose: dict[str, Any]) -> None:
    environment = _environment(compose["services"]["grafana"])
    password = environment["GF_SECURITY_ADMIN_PASSWORD"]
    assert password is not None and password.startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_demo_monitor_derives_a_config_that_differs_only_in_the_listen_address(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    """cxprobe-demo's command: its Python step, run on config/sandbox.yaml, gives the same
    configuration with monitor.http.host 0.0.0.0 (reachable by Prometheus in its container)."""
    (script,) = compose["services"]["cxprobe-demo"]["command"]
    words = shlex.split(script)
    code = words[words.index("python") + 2]
    derived = tmp_path / "cxprobe-demo.yaml"
    code = code.replace("/etc/cxprobe/config.yaml", str(ROOT / "config" / "sandbox.yaml"))
    code = code.replace("/tmp/cxprobe-demo.yaml", str(derived))
    subprocess.run([sys.executable, "-c", code], check=True)
    assert re.search(r"exec cxprobe run -c /tmp/cxprobe-demo\.yaml$", script)
    assert script.startswith("cxprobe validate /etc/cxprobe/config.yaml &&")

    original = load_config(ROOT / "config" / "sandbox.yaml", SANDBOX_ENV)
    copy = load_config(derived, SANDBOX_ENV)
    assert original.monitor.http.host == "127.0.0.1"
    assert copy.monitor.http.host == "0.0.0.0"
    assert copy.monitor.http.port == original.monitor.http.port
    copy.monitor.http.host = original.monitor.http.host
    assert copy.model_dump() == original.model_dump()


def test_the_pair_config_is_the_example_with_the_postgres_store() -> None:
    """config/production-postgres.yaml (the compose pair's) is config/example.yaml but for the
    store and the listen address a container needs."""
    environ = {name: "x" for name in EXAMPLE_SECRETS} | {"POSTGRES_PASSWORD": "pw"}
    example = load_config(ROOT / "config" / "example.yaml", environ)
    pair = load_config(ROOT / "config" / "production-postgres.yaml", environ)
    assert pair.monitor.store_url == "postgresql+asyncpg://cxprobe:pw@postgres/cxprobe"
    assert (example.monitor.http.host, pair.monitor.http.host) == ("127.0.0.1", "0.0.0.0")
    pair.monitor.store_url = example.monitor.store_url
    pair.monitor.http.host = example.monitor.http.host
    assert pair.model_dump() == example.model_dump()


# --- Prometheus: compose and `make demo` in step ---------------------------------------------


def _prometheus(name: str) -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "prometheus" / name).read_text())
    assert isinstance(document, dict)
    return document


def _targets(static_configs: list[dict[str, Any]]) -> list[str]:
    return [target for config in static_configs for target in config["targets"]]


def _shape(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration without its addresses and intervals, which are meant to differ."""
    shaped = json.loads(json.dumps(config))
    shaped.pop("global", None)
    for manager in shaped["alerting"]["alertmanagers"]:
        for static in manager["static_configs"]:
            static["targets"] = ["<address>"] * len(static["targets"])
    for job in shaped["scrape_configs"]:
        for static in job.get("static_configs", []):
            # compose scrapes a pair of monitors, `make demo` its one
            static["targets"] = ["<monitors>"]
    return shaped


def test_compose_and_demo_prometheus_differ_only_in_addresses_and_intervals() -> None:
    compose_config = _prometheus("prometheus.yml")
    demo_config = _prometheus("prometheus-demo.yml")
    assert _shape(compose_config) == _shape(demo_config)
    for config in (compose_config, demo_config):
        assert config["rule_files"] == ["rules/cxprobe.yml"]
        assert [job["job_name"] for job in config["scrape_configs"]] == ["cxprobe"]


def test_compose_prometheus_addresses_are_compose_services(compose: dict[str, Any]) -> None:
    config = _prometheus("prometheus.yml")
    services = compose["services"]
    (alertmanager,) = _targets(config["alerting"]["alertmanagers"][0]["static_configs"])
    assert alertmanager == "alertmanager:9093"
    assert "127.0.0.1:9093:9093" in services["alertmanager"]["ports"]
    monitors = _targets(config["scrape_configs"][0]["static_configs"])
    assert monitors == ["cxprobe-a:9464", "cxprobe-b:9464"]
    for monitor in monitors:
        name = monitor.removesuffix(":9464")
        # Each scraped on its own, by the service name it also carries as monitor.name.
        assert _environment(services[name])["CXPROBE_MONITOR_NAME"] == name
    # In the demo profile the monitor lives in the sandbox's namespace, which answers as the
    # first of the pair.
    assert services["sandbox"]["networks"]["default"]["aliases"] == ["cxprobe-a"]
    assert services["cxprobe-demo"]["network_mode"] == "service:sandbox"


def test_demo_prometheus_addresses_are_the_demo_script_s() -> None:
    config = _prometheus("prometheus-demo.yml")
    (alertmanager,) = _targets(config["alerting"]["alertmanagers"][0]["static_configs"])
    (monitor,) = _targets(config["scrape_configs"][0]["static_configs"])
    sandbox = load_config(ROOT / "config" / "sandbox.yaml", SANDBOX_ENV)
    assert monitor == f"{sandbox.monitor.http.host}:{sandbox.monitor.http.port}"
    script = (ROOT / "scripts" / "demo.sh").read_text()
    assert f"--web.listen-address={alertmanager}" in script
    assert "--config.file=prometheus/prometheus-demo.yml" in script
    assert "--config.file=prometheus/alertmanager.yml" in script
    assert "<<YAML" not in script  # no configuration of its own any more
