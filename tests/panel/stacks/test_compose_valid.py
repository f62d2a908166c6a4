"""Valid compose files resolve to the expected StackSpec, export back to the same spec, hash
stably per service, and are accepted by docker-compose's own validator where it knows the keys.
Pure parsing, no database (docker-compose runs as `config`, which needs no engine)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from panel.stacks.compose import (
    ComposeError,
    StackSpec,
    container_spec_hash,
    export_compose,
    parse_compose,
    service_spec_hash,
)

CASES = Path(__file__).parent / "compose_cases"
ENVIRONMENT = {"HTTP_PORT": "8081", "REPLICAS": "2", "HOST": "api.example.com",
               "FROM_STACK": "from-the-stack"}
ADMIN_ONLY = {"bind_mounts.yml"}
# keys that Debian's docker-compose 1.29 predates: `name:`, `host_ip` in long port syntax,
# `deploy.resources.limits.pids`, booleans as environment values, depends_on restart/required
NEWER_THAN_DOCKER_COMPOSE_1_29 = {"all_keys.yml", "external_and_ipam.yml", "newer_depends_on.yml"}
GB, MB = 1024**3, 1024**2
SECOND = 1_000_000_000


def load_case(name: str, **options: Any) -> StackSpec:
    options.setdefault("stack_name", None if name == "external_and_ipam.yml" else "shop")
    options.setdefault("environment", ENVIRONMENT)
    options.setdefault("allow_bind_mounts", name in ADMIN_ONLY)
    return parse_compose((CASES / name).read_text(), **options)


def all_cases() -> list[str]:
    return sorted(p.name for p in CASES.glob("*.yml"))


def test_real_shaped_files_map_every_key_to_the_container_spec() -> None:
    wordpress = load_case("wordpress_mysql.yml").services
    db, site = wordpress["db"].container, wordpress["wordpress"].container
    assert db["name"] == "wordpress-db" and db["expose"] == ["3306", "33060"]
    assert db["ulimits"] == {"nofile": {"soft": 20000, "hard": 40000}}
    assert db["security_opt"] == ["seccomp:unconfined"]
    assert site["extra_hosts"] == ["host.docker.internal:host-gateway"]
    assert site["logging"] == {"driver": "json-file",
                               "options": {"max-size": "10m", "max-file": "3"}}
    assert wordpress["wordpress"].depends_on == {"db": "service_started"}
    assert wordpress["db"].aliases == {"shop_default": ["mysql"]}  # links: [db:mysql]
    monitoring = load_case("monitoring.yml").services
    assert "debug" not in monitoring  # its profile is not active
    exporter = monitoring["node-exporter"].container
    assert (exporter["network_mode"], exporter["pid"], exporter["networks"]) == \
        ("host", "host", [])
    assert exporter["cap_add"] == ["SYS_TIME"]
    cadvisor = monitoring["cadvisor"].container
    assert cadvisor["privileged"] is True and cadvisor["devices"] == ["/dev/kmsg"]
    blackbox = monitoring["blackbox"].container
    assert blackbox["cap_drop"] == ["ALL"] and blackbox["cap_add"] == ["NET_RAW", "NET_ADMIN"]
    assert blackbox["sysctls"] == {"net.ipv4.ping_group_range": "0 2147483647"}
    assert (blackbox["dns"], blackbox["dns_search"], blackbox["tmpfs"]) == \
        (["10.0.0.2"], ["example.internal"], ["/tmp"])
    assert blackbox["shm_size"] == 64 * MB and blackbox["memory_reservation"] == 32 * MB
    assert blackbox["cpus_reservation"] == 0.1
    torrent = monitoring["torrent"]
    assert torrent.container["network_mode"] == "container:shop-vpn-1"
    assert torrent.depends_on == {"vpn": "service_started"}
    assert torrent.container["memory_reservation"] == 64 * MB
    extended = load_case("extends_and_profiles.yml").services
    assert set(extended) == {"api", "base-app", "worker"}
    api, worker = extended["api"].container, extended["worker"].container
    assert api["env"] == {"LOG_LEVEL": "info"} and api["init"] is True
    assert api["restart"] == "on-failure" and api["stop_signal"] == "SIGINT"
    assert api["command"] == ["httpd", "-f", "-p", "8080"]
    assert (worker["platform"], worker["group_add"], worker["ipc"]) == \
        ("linux/amd64", ["100"], "shareable")
    with_tools = load_case("extends_and_profiles.yml",
                           environment={**ENVIRONMENT, "COMPOSE_PROFILES": "tools"})
    assert "admin" in with_tools.services


def test_minimal_file_gets_compose_defaults() -> None:
    spec = load_case("minimal.yml")
    web = spec.services["web"]
    assert web.container["image"] == "nginx:latest"
    assert web.container["pull"] is True
    assert web.container["networks"] == ["shop_default"]
    assert web.replicas == 1
    assert web.update_config == {"parallelism": 1, "delay": 0, "order": "stop-first",
                                 "failure_action": "pause", "monitor": 5 * SECOND}
    assert web.container["restart"] == "no" and web.container["healthcheck"] is None
    assert spec.networks["default"].name == "shop_default"
    assert spec.volumes == {} and spec.order == ["web"]


def test_web_cache_worker_resolves_dependencies_volumes_and_rollout() -> None:
    spec = load_case("web_cache_worker.yml")
    assert spec.order == ["cache", "worker", "web"]
    web, worker, cache = (spec.services[n] for n in ("web", "worker", "cache"))
    assert web.depends_on == {"cache": "service_healthy", "worker": "service_started"}
    assert worker.depends_on == {"cache": "service_started"}
    assert web.container["volumes"] == ["shop_uploads:/srv/uploads"]
    assert worker.container["volumes"] == ["shop_uploads:/data/uploads:ro"]
    assert worker.container["command"] == ["python", "-m", "worker", "--queue", "default high"]
    assert cache.container["command"] == ["redis-server", "--save", ""]
    assert cache.container["healthcheck"]["test"] == ["CMD-SHELL", "redis-cli ping"]
    assert web.container["healthcheck"] == {
        "test": ["CMD", "wget", "-q", "--spider", "http://localhost/health"],
        "interval": 10 * SECOND, "timeout": 2 * SECOND, "start_period": 5 * SECOND,
        "retries": 3}
    assert web.replicas == 2
    assert web.update_config == {"parallelism": 1, "delay": 0, "order": "start-first",
                                 "failure_action": "rollback", "monitor": 20 * SECOND}
    assert web.container["ports"] == ["8080:80"]
    assert spec.volumes["uploads"].name == "shop_uploads"


def test_every_supported_service_key_is_resolved() -> None:
    spec = load_case("all_keys.yml")
    api = spec.services["api"]
    c = api.container
    assert c["image"].startswith("ghcr.io/example/api@sha256:0123")
    assert c["pull"] is False
    assert c["entrypoint"] == ["/docker-entrypoint.sh", "--verbose"]
    assert c["command"] == ["serve", "--port", "8000"]
    assert c["env"] == {"EMPTY": "", "FROM_STACK": "from-the-stack", "LOG_LEVEL": "debug"}
    assert c["ports"] == ["8000", "127.0.0.1:9090:9090", "5353:53/udp", "7000:7000",
                          "7001:7001", "0.0.0.0:443:8443"]
    assert c["volumes"] == ["shop_data:/var/lib/api:nocopy", "/tmp/scratch",
                            "shop_data:/srv/shared:ro"]
    assert c["networks"] == ["shop_front", "shop_back"]
    assert api.aliases == {"shop_front": ["api.internal", "backend-api"]}
    assert api.depends_on == {"db": "service_started"}
    assert c["healthcheck"] == {"test": ["CMD-SHELL", "curl -fs http://localhost:8000/ || exit 1"],
                                "interval": 90 * SECOND, "timeout": SECOND // 2,
                                "start_period": 10 * SECOND, "start_interval": 2 * SECOND,
                                "retries": 5}
    assert c["restart"] == "on-failure:3" and c["init"] is True  # from the merged x-defaults
    assert c["labels"] == {"com.example.flag": "", "com.example.role": "api"}  # list overrides
    assert (c["user"], c["workdir"], c["hostname"], c["read_only"]) == \
        ("1000:1000", "/srv/app", "api-host", True)
    assert (c["stop_signal"], c["stop_timeout"]) == ("SIGINT", 45)
    assert (c["cpus"], c["memory"], c["pids_limit"]) == (1.5, 512 * MB, 200)
    assert c["constraints"] == ["zone==eu-1", "disk!=hdd"]
    assert api.replicas == 4
    assert api.update_config == {"parallelism": 2, "delay": 5 * SECOND, "order": "stop-first",
                                 "failure_action": "pause", "monitor": 60 * SECOND}
    db = spec.services["db"]
    assert db.container["restart"] == "no"  # "no" quoted; an unquoted no is a string in 1.2 too
    assert db.container["env"] == {"ENABLED": "true", "POSTGRES_PASSWORD": "example",
                                   "POSTGRES_PORT": "5432"}
    assert db.container["healthcheck"]["test"] == ["NONE"]
    assert db.replicas == 0 and db.container["memory"] == GB
    idle = spec.services["idle"]
    assert idle.container["labels"] == {"team": "platform"}  # merged from x-defaults
    assert idle.container["init"] is True
    assert idle.container["restart"] == "unless-stopped"  # its own key wins over the merge
    assert idle.container["networks"] == ["shop_default"]
    assert spec.volumes["data"].labels == {"com.example.backup": "daily"}
    assert spec.networks["back"].internal is True
    assert spec.networks["front"].labels == {"com.example.tier": "front"}
    assert set(spec.networks) == {"front", "back", "default"}
    assert spec.order == ["db", "api", "idle"]


def test_external_resources_names_and_ipam() -> None:
    spec = load_case("external_and_ipam.yml")
    assert spec.name == "infra"  # from the file's name:
    assert spec.volumes["certs"].name == "shared-certs" and spec.volumes["certs"].external
    assert spec.volumes["logs"].name == "infra-logs" and not spec.volumes["logs"].external
    assert spec.networks["edge"].name == "berth" and spec.networks["edge"].external
    default = spec.networks["default"]
    assert (default.name, default.subnet, default.gateway) == \
        ("infra_default", "10.77.0.0/24", "10.77.0.1")
    assert spec.services["proxy"].container["networks"] == ["berth", "infra_default"]
    assert spec.services["app"].container["networks"] == ["infra_default"]
    assert spec.services["proxy"].container["volumes"] == ["shared-certs:/certs"]


def test_caller_stack_name_wins_over_the_files_name() -> None:
    spec = load_case("external_and_ipam.yml", stack_name="other")
    assert spec.name == "other" and spec.volumes["logs"].name == "infra-logs"
    assert spec.networks["default"].name == "other_default"


def test_interpolation_fills_values_and_casts_numbers() -> None:
    spec = load_case("interpolated.yml")
    web = spec.services["web"]
    assert web.container["image"] == "nginx:1.27"
    assert web.container["ports"] == ["8081:80"]
    assert web.replicas == 2  # "${REPLICAS}" became a number where one is expected
    assert web.container["env"] == {"GREETING": "Hello ${USER}, cost $5", "MODE": "production",
                                    "URL": "http://api.example.com/api"}


def test_bind_mounts_only_for_platform_admins() -> None:
    spec = load_case("bind_mounts.yml")
    assert spec.services["agent"].container["entrypoint"] == ["/agent", "--host-root", "/host"]
    assert spec.services["agent"].container["volumes"] == [
        "/var/log:/host/log:ro", "/etc/hostname:/host/hostname:ro"]
    with pytest.raises(ComposeError) as caught:
        load_case("bind_mounts.yml", allow_bind_mounts=False)
    assert [(e["path"], e["line"]) for e in caught.value.errors] == [
        ("services.agent.volumes[0]", 6), ("services.agent.volumes[1]", 7)]
    assert all("platform admins only" in e["message"] for e in caught.value.errors)


def test_yaml_1_2_scalars_as_compose_reads_them() -> None:
    spec = parse_compose(textwrap.dedent("""\
        services:
          ssh:
            image: example/sshd
            restart: no
            ports: [22:22, 2222:22/udp]
            environment: {ENABLED: yes, MODE: off, OCTAL: 0o17}
        """), stack_name="shop")
    c = spec.services["ssh"].container
    assert c["restart"] == "no"
    assert c["ports"] == ["22:22", "2222:22/udp"]
    assert c["env"] == {"ENABLED": "yes", "MODE": "off", "OCTAL": "15"}


def test_every_error_of_a_file_is_reported_at_once() -> None:
    text = textwrap.dedent("""\
        services:
          web:
            image: nginx
            build: .
            ports: ["99999"]
            deploy: {replicas: -2}
          db:
            image: postgres
            volumes: [pgdata:/var/lib/postgresql/data]
            depends_on: [cache]
        """)
    with pytest.raises(ComposeError) as caught:
        parse_compose(text, stack_name="shop")
    assert [(e["path"], e["line"], e["column"]) for e in caught.value.errors] == [
        ("services.web.build", 4, 5), ("services.web.ports[0]", 5, 13),
        ("services.web.deploy.replicas", 6, 24), ("services.db.volumes[0]", 9, 15),
        ("services.db.depends_on[0]", 10, 18)]
    assert str(caught.value).splitlines()[0] == (
        "services.web.build (line 4, column 5): builds from source are not supported yet; this "
        "service also names image: nginx: remove build: to deploy that image as it is")
    json.dumps(caught.value.errors)  # the API returns them as they are


@pytest.mark.parametrize("name", all_cases())
def test_export_parses_back_to_the_same_spec(name: str) -> None:
    spec = load_case(name)
    text = export_compose(spec)
    again = parse_compose(text, environment={}, allow_bind_mounts=name in ADMIN_ONLY)
    assert again.to_dict() == spec.to_dict()
    assert export_compose(again) == text


@pytest.mark.parametrize("name", all_cases())
def test_spec_is_deterministic_json(name: str) -> None:
    first, second = load_case(name), load_case(name)
    assert first.to_json() == second.to_json()
    restored = StackSpec.from_dict(json.loads(first.to_json()))
    assert restored.to_dict() == first.to_dict()


def test_values_with_dollars_survive_the_round_trip() -> None:
    spec = parse_compose(textwrap.dedent("""\
        services:
          web:
            image: nginx
            command: ["sh", "-c", "echo $$HOME $${PATH}"]
            labels: {price: "$$5"}
        """), stack_name="shop")
    assert spec.services["web"].container["command"] == ["sh", "-c", "echo $HOME ${PATH}"]
    again = parse_compose(export_compose(spec))
    assert again.to_dict() == spec.to_dict()


def test_service_hash_changes_only_for_the_service_that_changed() -> None:
    base = (CASES / "web_cache_worker.yml").read_text()
    before = parse_compose(base, stack_name="shop")
    after = parse_compose(base.replace("redis:7-alpine", "redis:7.2-alpine"), stack_name="shop")
    changed = {name for name in before.services
               if service_spec_hash(before.services[name]) !=
               service_spec_hash(after.services[name])}
    assert changed == {"cache"}


def test_replicas_change_the_service_hash_but_not_the_container_hash() -> None:
    base = (CASES / "web_cache_worker.yml").read_text()
    before = parse_compose(base, stack_name="shop").services["web"]
    after = parse_compose(base.replace("replicas: 2", "replicas: 5"),
                          stack_name="shop").services["web"]
    assert service_spec_hash(before) != service_spec_hash(after)
    assert container_spec_hash(before) == container_spec_hash(after)


def test_hash_ignores_how_the_file_is_written() -> None:
    compact = parse_compose("services: {web: {image: nginx, environment: [A=1, B=2], "
                            "labels: {x: '1'}}}", stack_name="shop")
    spread = parse_compose(textwrap.dedent("""\
        x-env: &env
          B: "2"
        services:
          web:
            labels: [x=1]
            environment:
              <<: *env
              A: 1
            image: nginx:latest
        """), stack_name="shop")
    assert service_spec_hash(compact.services["web"]) == service_spec_hash(spread.services["web"])
    assert service_spec_hash(compact.services["web"]).startswith("sha256:")


def _docker_compose_config(path: Path) -> dict[str, Any]:
    executable = shutil.which("docker-compose")
    assert executable, "docker-compose is missing: scripts/setup.sh installs it"
    result = subprocess.run(
        [executable, "-f", str(path), "-p", "shop", "config"], capture_output=True, text=True,
        env={"PATH": os.environ["PATH"], **ENVIRONMENT}, timeout=60)
    assert result.returncode == 0, f"docker-compose refused {path.name}: {result.stderr}"
    return yaml.safe_load(result.stdout)


def test_docker_compose_accepts_the_valid_files_it_knows() -> None:
    names = [n for n in all_cases() if n not in NEWER_THAN_DOCKER_COMPOSE_1_29]
    assert len(names) >= 4
    for name in names:
        theirs = _docker_compose_config(CASES / name)
        # services of a profile that is not active are left out (docker-compose 1.29 lists
        # them in `config`, and starts only the active ones)
        theirs["services"] = {service: config for service, config in theirs["services"].items()
                              if not config.get("profiles")}
        ours = load_case(name)
        assert set(theirs["services"]) == set(ours.services), name
        for service, config in theirs["services"].items():
            replicas = config.get("deploy", {}).get("replicas", 1)
            assert ours.services[service].replicas == replicas, (name, service)
            assert len(config.get("ports", [])) == len(ours.services[service].container["ports"])
