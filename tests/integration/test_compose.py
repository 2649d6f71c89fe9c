"""docker-compose.yml validated offline, and both Prometheus configurations checked by promtool.

No Docker engine runs here: Debian's docker-compose (v1.29, scripts/install-system-deps.sh)
resolves and validates the file without one. v1 accepts `--profile` but its `config` prints
every service whatever the active profiles (with their `profiles` key): profile membership is
asserted on that output. A missing tool fails these tests; they never skip."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cxprobe.settings import load_config
from tests.support import require_binary

ROOT = Path(__file__).resolve().parents[2]
#: One location's pair of monitors, sharing the store in the postgres service.
PAIR = ("cxprobe-a", "cxprobe-b")
PRODUCTION = {"postgres", *PAIR, "prometheus", "alertmanager", "grafana"}
DEMO = {"sandbox", "cxprobe-demo"}
MONITORS = {*PAIR, "cxprobe-demo"}
# Variables that would change what is validated (the defaults are under test), from the
# environment; a developer's .env is not read either (--env-file names an empty file).
OVERRIDES = (
    "CXPROBE_CONFIG",
    "GRAFANA_ADMIN_PASSWORD",
    "POSTGRES_PASSWORD",
    "COMPOSE_FILE",
    "COMPOSE_PROFILES",
)
#: The passwords the file requires, for the tests that resolve it.
PASSWORDS = {
    "GRAFANA_ADMIN_PASSWORD": "test-only-password",
    "POSTGRES_PASSWORD": "testOnlyStorePassword1",
}


class Compose:
    """docker-compose on the repository's docker-compose.yml (or another file)."""

    def __init__(self, empty_env_file: Path) -> None:
        self.binary = require_binary("docker-compose")
        self.env_file = empty_env_file

    def __call__(
        self, *arguments: str, compose_file: Path = ROOT / "docker-compose.yml", **env: str
    ) -> subprocess.CompletedProcess[str]:
        environment = {name: value for name, value in os.environ.items() if name not in OVERRIDES}
        options = ["--project-directory", str(ROOT), "--env-file", str(self.env_file)]
        return subprocess.run(
            [self.binary, *options, "-f", str(compose_file), *arguments],
            capture_output=True,
            text=True,
            env={**environment, **env},
            cwd=ROOT,
            timeout=60,
        )

    def resolved(self, *profile: str) -> dict[str, Any]:
        result = self(*profile, "config", **PASSWORDS)
        assert result.returncode == 0, result.stderr
        document = yaml.safe_load(result.stdout)
        assert isinstance(document, dict)
        return document


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> Compose:
    empty = tmp_path_factory.mktemp("compose") / "empty.env"
    empty.touch()
    return Compose(empty)


@pytest.fixture(scope="module")
def production(compose: Compose) -> dict[str, Any]:
    return compose.resolved()


@pytest.fixture(scope="module")
def demo(compose: Compose) -> dict[str, Any]:
    return compose.resolved("--profile", "demo")


def _named_volumes(service: dict[str, Any]) -> dict[str, str]:
    """Named volume -> container path."""
    named = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if not source.startswith("/"):
            named[source] = target
    return named


def _binds(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(host path, container path, mode) of each bind mount; named volumes left out."""
    binds = []
    for volume in service.get("volumes", []):
        source, target, *mode = volume.split(":")
        if source.startswith("/"):
            binds.append((source, target, mode[0] if mode else "rw"))
    return binds


def test_compose_version_and_profiles(
    compose: Compose, production: dict[str, Any], demo: dict[str, Any]
) -> None:
    version = compose("version", "--short")
    assert version.returncode == 0 and version.stdout.startswith("1.29"), version
    for config in (production, demo):
        services = config["services"]
        assert set(services) == PRODUCTION | DEMO
        assert {name for name, service in services.items() if not service.get("profiles")} == (
            PRODUCTION
        )
        for name in DEMO:
            assert services[name]["profiles"] == ["demo"]


@pytest.mark.parametrize("password", sorted(PASSWORDS))
def test_each_password_is_required(compose: Compose, password: str) -> None:
    others = {name: value for name, value in PASSWORDS.items() if name != password}
    assert compose("config", "-q", **PASSWORDS).returncode == 0
    result = compose("config", "-q", **others)
    assert result.returncode != 0
    assert f"set {password}" in result.stderr, result.stderr


def test_every_bind_mount_is_a_path_of_the_repository(demo: dict[str, Any]) -> None:
    mounted = 0
    for name, service in demo["services"].items():
        for source, target, mode in _binds(service):
            path = Path(source)
            assert path.is_relative_to(ROOT), (name, source)
            assert path.exists(), f"{name}: {source} (mounted at {target}) does not exist"
            assert mode == "ro", (name, source, mode)  # configuration only, never written
            mounted += 1
        for volume in service.get("volumes", []):
            if not volume.startswith("/"):
                assert volume.split(":")[0] in demo["volumes"], (name, volume)
    assert mounted == 9


def test_mounts_are_where_the_configurations_expect_them(demo: dict[str, Any]) -> None:
    services = demo["services"]

    def mounts(service: str) -> dict[str, Path]:
        return {
            target: Path(source).relative_to(ROOT)
            for source, target, _ in _binds(services[service])
        }

    for monitor in PAIR:
        assert mounts(monitor) == {
            "/etc/cxprobe/config.yaml": Path("config/production-postgres.yaml")
        }
    assert mounts("cxprobe-demo") == {"/etc/cxprobe/config.yaml": Path("config/sandbox.yaml")}
    assert mounts("alertmanager") == {
        "/etc/alertmanager/alertmanager.yml": Path("prometheus/alertmanager.yml")
    }
    assert mounts("grafana") == {
        "/etc/grafana/provisioning/datasources": Path("grafana/provisioning/datasources"),
        "/etc/grafana/provisioning/dashboards": Path("grafana/provisioning/dashboards"),
        "/var/lib/grafana/dashboards/cxprobe": Path("grafana/dashboards"),
    }
    prometheus = mounts("prometheus")
    assert prometheus == {
        "/etc/prometheus/prometheus.yml": Path("prometheus/prometheus.yml"),
        "/etc/prometheus/rules": Path("prometheus/rules"),
    }
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    # rule_files are relative to the configuration file, in the repository and the container.
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    for rule_file in config["rule_files"]:
        in_container = Path("/etc/prometheus") / rule_file
        (mount,) = [target for target in prometheus if in_container.is_relative_to(target)]
        in_repo = ROOT / prometheus[mount] / in_container.relative_to(mount)
        assert in_repo == ROOT / "prometheus" / rule_file
        assert in_repo.is_file(), in_repo
    assert list((ROOT / "grafana" / "dashboards").glob("*.json"))
    assert list((ROOT / "grafana" / "provisioning" / "datasources").glob("*.y*ml"))
    assert list((ROOT / "grafana" / "provisioning" / "dashboards").glob("*.y*ml"))


def test_published_ports_bind_loopback_only(demo: dict[str, Any]) -> None:
    published = {}
    for name, service in demo["services"].items():
        for port in service.get("ports", []):
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), (name, port)
            published[name] = port
    assert published == {
        "cxprobe-a": "127.0.0.1:9464:9464/tcp",
        "cxprobe-b": "127.0.0.1:9465:9464/tcp",  # both behind the reverse proxy
        "prometheus": "127.0.0.1:9090:9090/tcp",
        "alertmanager": "127.0.0.1:9093:9093/tcp",
        "grafana": "127.0.0.1:3000:3000/tcp",
        "sandbox": "127.0.0.1:9464:9464/tcp",  # cxprobe-demo's, from the shared namespace
    }


def test_images_and_builds(demo: dict[str, Any]) -> None:
    services = demo["services"]
    for name in MONITORS:
        assert services[name]["build"] == {"context": str(ROOT), "target": "cxprobe"}
        assert services[name]["image"] == "cxprobe:local"
        assert "user" not in services[name]  # the image's non-root user
        assert services[name]["cap_drop"] == ["ALL"]
    assert services["sandbox"]["build"] == {"context": str(ROOT), "target": "sandbox"}
    for name in PRODUCTION - MONITORS:
        image = services[name]["image"]
        assert "build" not in services[name]
        assert ":" in image and not image.endswith(":latest"), image  # pinned


def test_demo_monitor_shares_the_sandbox_network_namespace(demo: dict[str, Any]) -> None:
    services = demo["services"]
    monitor = services["cxprobe-demo"]
    assert monitor["network_mode"] == "service:sandbox"
    assert monitor["depends_on"] == {"sandbox": {"condition": "service_healthy"}}
    assert "ports" not in monitor  # published by the namespace's owner, the sandbox
    assert services["sandbox"]["networks"]["default"]["aliases"] == ["cxprobe-a"]
    assert services["sandbox"]["healthcheck"]["test"][:2] == ["CMD", "python"]


def test_the_pair_shares_one_config_and_the_postgres_store(production: dict[str, Any]) -> None:
    """Both monitors: the same configuration, a monitor.name each, the store's password, and
    started once PostgreSQL answers; the configuration's store is that service's database."""
    services = production["services"]
    postgres = services["postgres"]
    database = postgres["environment"]
    assert database["POSTGRES_PASSWORD"] == PASSWORDS["POSTGRES_PASSWORD"]
    assert "ports" not in postgres  # only the monitors reach it, over the compose network
    assert [volume.split(":")[:2] for volume in postgres["volumes"]] == [
        ["postgres-data", "/var/lib/postgresql/data"]
    ]
    assert "postgres-data" in production["volumes"]
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    names = []
    for monitor in PAIR:
        service = services[monitor]
        assert service["depends_on"] == {"postgres": {"condition": "service_healthy"}}
        environment = service["environment"]
        assert environment["POSTGRES_PASSWORD"] == database["POSTGRES_PASSWORD"]
        names.append(environment["CXPROBE_MONITOR_NAME"])
    assert names == list(PAIR)  # distinct, and the names Prometheus scrapes them by
    first, second = (services[monitor] for monitor in PAIR)
    assert _binds(first) == _binds(second)  # one configuration
    # Each keeps its own data_dir (its spooled replies) in a named volume of its own.
    data_volumes = {monitor: _named_volumes(services[monitor]) for monitor in PAIR}
    assert data_volumes == {monitor: {f"{monitor}-data": "/var/lib/cxprobe"} for monitor in PAIR}, (
        data_volumes
    )
    assert all(f"{monitor}-data" in production["volumes"] for monitor in PAIR)
    shared = [
        {
            name: value
            for name, value in service["environment"].items()
            if name != "CXPROBE_MONITOR_NAME"
        }
        for service in (first, second)
    ]
    assert shared[0] == shared[1]  # the same secrets, passed through
    config = load_config(
        ROOT / "config" / "production-postgres.yaml",
        environ={name: "x" for name in services[PAIR[0]]["environment"]}
        | {"POSTGRES_PASSWORD": database["POSTGRES_PASSWORD"]},
    )
    assert config.monitor.store_url == (
        f"postgresql+asyncpg://{database['POSTGRES_USER']}:{database['POSTGRES_PASSWORD']}"
        f"@postgres/{database['POSTGRES_DB']}"
    )
    assert config.monitor.http.host == "0.0.0.0" and config.monitor.http.port == 9464
    assert str(config.monitor.data_dir) == "/var/lib/cxprobe"


def test_a_broken_service_reference_is_caught(compose: Compose, tmp_path: Path) -> None:
    """What `docker-compose config` validates beyond YAML: e.g. the network_mode reference."""
    text = (ROOT / "docker-compose.yml").read_text()
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace('"service:sandbox"', '"service:nope"'))
    result = compose("config", "-q", compose_file=broken, **PASSWORDS)
    assert result.returncode != 0
    assert "nope" in result.stderr


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-demo.yml"])
def test_promtool_checks_both_prometheus_configs(config: str) -> None:
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "config", str(ROOT / "prometheus" / config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # The rule file was found (relative to the config) and its rules are valid.
    assert "SUCCESS: 1 rule files found" in output, output
    rules = ROOT / "prometheus" / "rules" / "cxprobe.yml"
    assert f"Checking {rules}\n  SUCCESS: " in output, output
