"""Compose files that read their own directory: env_file, secrets and configs from files,
relative bind mounts. The stack's directory is the files uploaded with it (compose_dirs/*: a
Nextcloud-shaped app, a static site with relative binds). docker-compose 1.29 reads the same
directories as the peer: both must give each service the same environment."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from panel.stacks.compose import ComposeError, StackSpec, export_compose, parse_compose

DIRS = Path(__file__).parent / "compose_dirs"
SECRET = "@@berth-secret:{}@@"


def directory_files(name: str) -> dict[str, str]:
    root = DIRS / name
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "compose.yml"}


def load_dir(name: str, **options: Any) -> StackSpec:
    options.setdefault("files", directory_files(name))
    return parse_compose((DIRS / name / "compose.yml").read_text(), stack_name="shop",
                         **options)


def _decoded(entry: dict[str, Any]) -> str:
    return base64.b64decode(entry["content"]).decode()


def test_env_files_secrets_and_configs_of_a_nextcloud_like_app() -> None:
    spec = load_dir("nextcloud_like")
    app, db = spec.services["app"].container, spec.services["db"].container
    assert app["env"] == {
        "MYSQL_DATABASE": "nextcloud", "MYSQL_USER": "nextcloud",  # db.env
        "NEXTCLOUD_ADMIN_USER": "admin", "OVERWRITEPROTOCOL": "https",  # app.env
        "NEXTCLOUD_TRUSTED_DOMAINS": "cloud.example.com localhost", "PHP_UPLOAD_LIMIT": "1G",
        "MYSQL_HOST": "db",  # environment: wins over the env file
        "REDIS_HOST": "redis", "MYSQL_PASSWORD_FILE": "/run/secrets/mysql_password",
        "NEXTCLOUD_ADMIN_PASSWORD_FILE": "/run/secrets/nextcloud_admin_password"}
    secrets = {e["target"]: e for e in app["files"] if "secret" in e}
    assert secrets == {
        "/run/secrets/mysql_password": {"target": "/run/secrets/mysql_password", "mode": 0o444,
                                        "secret": "file:secrets/mysql_password.txt"},
        "/run/secrets/nextcloud_admin_password": {
            "target": "/run/secrets/nextcloud_admin_password", "mode": 0o400,
            "secret": "file:secrets/nextcloud_admin_password.txt"}}
    config = next(e for e in app["files"] if "content" in e)
    assert config["target"] == "/usr/local/etc/php/conf.d/zz-tuning.ini"
    assert _decoded(config) == "memory_limit = 512M\nupload_max_filesize = 1G\n"
    assert [e["target"] for e in db["files"]] == ["/run/secrets/mysql_password",
                                                  "/run/secrets/mysql_root_password"]
    assert spec.secret_files == ["secrets/mysql_password.txt",
                                 "secrets/mysql_root_password.txt",
                                 "secrets/nextcloud_admin_password.txt"]
    assert "nc-db-pass" not in spec.to_json()  # a secret's content never enters the spec


def test_a_stack_variable_reaches_an_env_file_and_single_quotes_stay_literal() -> None:
    files = directory_files("nextcloud_like")
    files["app.env"] += "PRICE='$5'\nEXTRA=${TRUSTED_EXTRA}\n"
    env = load_dir("nextcloud_like", files=files, environment={"TRUSTED_EXTRA": "nc.lan"}) \
        .services["app"].container["env"]
    assert env["NEXTCLOUD_TRUSTED_DOMAINS"] == "cloud.example.com nc.lan"
    assert (env["PRICE"], env["EXTRA"]) == ("$5", "nc.lan")


def test_a_secret_from_a_stack_secret_and_a_config_written_inline() -> None:
    spec = parse_compose("""
services:
  api:
    image: busybox
    secrets: [{source: token, target: /etc/api/token, uid: "1000", mode: 0o440}]
    configs: [motd]
secrets:
  token: {environment: API_TOKEN}
configs:
  motd: {content: "welcome to ${SITE}"}
""", stack_name="shop", environment={"API_TOKEN": SECRET.format("API_TOKEN"), "SITE": "shop"},
        secret_names={"API_TOKEN"})
    files = spec.services["api"].container["files"]
    assert files[0] == {"target": "/etc/api/token", "mode": 0o440, "uid": 1000,
                        "secret": "API_TOKEN"}
    assert files[1]["target"] == "/motd" and _decoded(files[1]) == "welcome to shop"


def test_relative_binds_are_the_stacks_directory_with_the_files_under_each_mount() -> None:
    spec = load_dir("static_site_binds")  # an operator's file: no bind-mount privilege
    web, sync = spec.services["web"].container, spec.services["sync"].container
    assert web["volumes"] == [] and sync["volumes"] == []
    assert web["stack_dir"]["stack"] == "shop"
    assert web["stack_dir"]["mounts"] == ["conf/nginx.conf:/etc/nginx/conf.d/default.conf:ro",
                                          "site:/usr/share/nginx/html:ro",
                                          "logs:/var/log/nginx"]
    assert sorted(web["stack_dir"]["files"]) == ["conf/nginx.conf", "site/index.html",
                                                 "site/style.css"]
    assert sync["stack_dir"]["mounts"] == ["site:/data/site"]  # ~/x is the stack's ./x
    assert sorted(sync["stack_dir"]["files"]) == ["site/index.html", "site/style.css"]


def test_files_export_and_read_back_to_the_same_spec() -> None:
    for name in ("nextcloud_like", "static_site_binds"):
        spec = load_dir(name)
        again = parse_compose(export_compose(spec), stack_name="shop",
                              files=directory_files(name))
        assert again.to_dict() == spec.to_dict(), name


@pytest.mark.parametrize("text, path, message", [
    ("services:\n  a:\n    image: busybox\n    env_file: ../outside.env\n",
     "services.a.env_file", "relative path not leaving it"),
    ("services:\n  a:\n    image: busybox\n    env_file: [{path: gone.env, required: false},"
     " gone.env]\n", "services.a.env_file[1]", "not among the stack's files"),
    ("services:\n  a: {image: busybox, configs: [c]}\nconfigs:\n  c: {environment: TOKEN}\n",
     "configs.c.environment", "is a secret of the stack"),
    ("services:\n  a: {image: busybox, secrets: [s]}\nsecrets:\n  s: {file: ./s, "
     "environment: X}\n", "secrets.s", "exactly one of"),
    ("services:\n  a:\n    image: busybox\n    secrets: [{source: s, target: ../../etc/x}]\n"
     "secrets:\n  s: {file: ./s}\n", "services.a.secrets[0]", "without '..'"),
])
def test_bad_file_references_name_the_key(text: str, path: str, message: str) -> None:
    with pytest.raises(ComposeError) as caught:
        parse_compose(text, stack_name="shop", files={"s": "x"},
                      environment={"TOKEN": SECRET.format("TOKEN")}, secret_names={"TOKEN"})
    assert any(e["path"] == path and message in e["message"] for e in caught.value.errors), \
        caught.value.errors


def test_docker_compose_gives_the_services_the_same_environment(tmp_path: Path) -> None:
    """The peer: docker-compose 1.29 reads the same directory (env files, interpolation,
    precedence); every service gets the same variables."""
    executable = shutil.which("docker-compose")
    assert executable, "docker-compose is missing: scripts/setup.sh installs it"
    copy = tmp_path / "nextcloud_like"
    shutil.copytree(DIRS / "nextcloud_like", copy)
    # 1.29 predates env_file's long form ({path, required}): the same files, short form
    document = yaml.safe_load((copy / "compose.yml").read_text())
    document["services"]["app"]["env_file"] = ["db.env", "./app.env"]
    (copy / "compose.yml").write_text(yaml.safe_dump(document))
    result = subprocess.run([executable, "-f", str(copy / "compose.yml"), "-p", "shop",
                             "config"], capture_output=True, text=True, timeout=60,
                            env={"PATH": os.environ["PATH"]}, cwd=copy)
    assert result.returncode == 0, result.stderr
    theirs = yaml.safe_load(result.stdout)["services"]
    ours = load_dir("nextcloud_like").services
    for name, service in ours.items():
        assert service.container["env"] == {k: str(v) for k, v in
                                            (theirs[name].get("environment") or {}).items()}, name
