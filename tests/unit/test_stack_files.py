"""The agent writing a spec's files (runtime/agent/stack_files.py) into a real directory: secret
and config files with their modes, the stack's directory and its mounts, and every way a
container could turn that directory against the host (symlinks it planted, `..`)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from runtime.agent.stack_files import prepare, remove_files
from runtime.errors import InvalidArgument


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _spec(**fields) -> dict:
    return {"uid": "u-1", "image": "busybox", "volumes": ["data:/data"], **fields}


def test_secret_and_config_files_are_written_with_their_mode_and_mounted_read_only(
        tmp_path: Path) -> None:
    spec = prepare(tmp_path, _spec(files=[
        {"target": "/run/secrets/pw", "mode": 0o400, "content": _b64("s3cret")},
        {"target": "/etc/motd", "mode": 0o444, "content": _b64("hello")}]))
    assert "files" not in spec and spec["volumes"][0] == "data:/data"
    first, second = (Path(v.split(":")[0]) for v in spec["volumes"][1:])
    assert spec["volumes"][1].endswith(":/run/secrets/pw:ro")
    assert first.read_text() == "s3cret" and oct(first.stat().st_mode & 0o777) == "0o400"
    assert second.read_text() == "hello"
    assert oct(first.parent.stat().st_mode & 0o777) == "0o700"
    remove_files(tmp_path, "u-1")
    assert not first.parent.exists()


def test_the_stack_directory_gets_the_files_and_missing_mount_sources(tmp_path: Path) -> None:
    directory = {"stack": "shop", "mounts": ["site:/srv:ro", "conf/app.ini:/etc/app.ini",
                                             "logs:/var/log/app", ".:/project"],
                 "files": {"site/index.html": _b64("hi"), "conf/app.ini": _b64("a=1")}}
    spec = prepare(tmp_path, _spec(stack_dir=directory))
    base = tmp_path / "stacks" / "shop"
    assert spec["volumes"][1:] == [f"{base}/site:/srv:ro", f"{base}/conf/app.ini:/etc/app.ini",
                                   f"{base}/logs:/var/log/app", f"{base}:/project"]
    assert (base / "site" / "index.html").read_text() == "hi"
    assert (base / "logs").is_dir()  # created, as Docker creates a missing bind source
    (base / "site" / "index.html").write_text("changed by a container")
    (base / "site" / "upload.png").write_text("kept")
    prepare(tmp_path, _spec(stack_dir=directory))
    assert (base / "site" / "index.html").read_text() == "hi"  # the uploaded files win
    assert (base / "site" / "upload.png").read_text() == "kept"  # the rest stays


@pytest.mark.parametrize("planted, files, mounts", [
    ("site", {"site/index.html": "x"}, []),  # site -> /etc: a file written through it
    ("site/index.html", {"site/index.html": "x"}, []),  # replaced by rename, never followed
    ("site", {}, ["site:/srv"]),  # a mount source that is a link
    ("logs", {}, ["logs/app:/var/log/app"]),  # a link on the way to a mount source
])
def test_symlinks_a_container_planted_are_never_followed(tmp_path: Path, planted, files,
                                                         mounts) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "index.html").write_text("host file")
    base = tmp_path / "root" / "stacks" / "shop"
    link = base / planted
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(outside / "index.html" if planted.endswith(".html") else outside, link)
    directory = {"stack": "shop", "mounts": mounts,
                 "files": {k: _b64(v) for k, v in files.items()}}
    try:
        spec = prepare(tmp_path / "root", _spec(stack_dir=directory))
    except InvalidArgument as exc:
        assert "symlink" in str(exc)
    else:  # only a planted final file is allowed through: it is replaced, not written to
        assert planted == "site/index.html" and not link.is_symlink()
        assert spec["volumes"] == ["data:/data"]
    assert (outside / "index.html").read_text() == "host file"
    assert sorted(p.name for p in outside.iterdir()) == ["index.html"]


@pytest.mark.parametrize("directory", [
    {"stack": "shop", "mounts": ["../up:/x"], "files": {}},
    {"stack": "shop", "mounts": [], "files": {"../../etc/passwd": _b64("x")}},
    {"stack": "../etc", "mounts": [], "files": {}},
])
def test_paths_leaving_the_stack_directory_are_refused(tmp_path: Path, directory) -> None:
    with pytest.raises(InvalidArgument):
        prepare(tmp_path, _spec(stack_dir=directory))
    assert not (tmp_path / "etc").exists() and not (tmp_path / "up").exists()
