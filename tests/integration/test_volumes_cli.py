"""`berth-runtime volume …` as a user types it: tables, JSON, filters, exit codes, messages."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.root


def test_create_ls_inspect_rm(cli, berth_root: Path) -> None:
    assert cli("volume", "create", "data", "--label", "app=web", "--label", "tier").stdout \
        == "data\n"
    anonymous = cli("volume", "create").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", anonymous)

    table = cli("volume", "ls").stdout.splitlines()
    assert table[0].split() == ["DRIVER", "VOLUME", "NAME"]
    assert sorted(line.split()[1] for line in table[1:]) == sorted(["data", anonymous])

    [inspected] = json.loads(cli("volume", "inspect", "data").stdout)
    assert inspected["Name"] == "data"
    assert inspected["Driver"] == "local"
    assert inspected["Labels"] == {"app": "web", "tier": ""}
    assert inspected["Mountpoint"] == str(berth_root / "volumes" / "data" / "_data")

    assert cli("volume", "rm", "data", anonymous).stdout.split() == ["data", anonymous]
    assert cli("volume", "ls", "-q").stdout == ""


def test_ls_filters_by_label_and_prints_json(cli) -> None:
    cli("volume", "create", "web-data", "--label", "app=web")
    cli("volume", "create", "db-data", "--label", "app=db")
    cli("volume", "create", "scratch")
    assert cli("volume", "ls", "-q", "--filter", "label=app=web").stdout.split() == ["web-data"]
    assert cli("volume", "ls", "-q", "--filter", "label=app").stdout.split() == [
        "db-data", "web-data"]
    listed = json.loads(cli("--json", "volume", "ls", "--filter", "name=scr").stdout)
    assert [v["Name"] for v in listed] == ["scratch"]
    bad = cli("volume", "ls", "--filter", "color=red", check=False)
    assert bad.returncode == 125 and "supported filters are label, name and dangling" in bad.stderr


def test_invalid_name_is_refused_with_the_rule(cli) -> None:
    result = cli("volume", "create", "../etc", check=False)
    assert result.returncode == 125
    assert "invalid volume name '../etc'" in result.stderr
    assert "[a-zA-Z0-9_.-]" in result.stderr
    assert cli("volume", "ls", "-q").stdout == ""


def test_inspect_and_rm_of_missing_volume_fail_naming_it(cli) -> None:
    cli("volume", "create", "real")
    inspected = cli("volume", "inspect", "real", "ghost", check=False)
    assert inspected.returncode == 1
    assert [v["Name"] for v in json.loads(inspected.stdout)] == ["real"]
    assert "no such volume: 'ghost'" in inspected.stderr
    removed = cli("volume", "rm", "ghost", check=False)
    assert removed.returncode == 1 and "'ghost'" in removed.stderr
    assert cli("volume", "rm", "-f", "ghost").returncode == 0


def test_backup_and_restore_round_trip(cli, berth_root: Path) -> None:
    cli("volume", "create", "source")
    data = berth_root / "volumes" / "source" / "_data"
    (data / "notes").mkdir()
    (data / "notes" / "todo.txt").write_text("ship it\n")
    backup = berth_root / "source.tar.zst"
    summary = json.loads(cli("--json", "volume", "backup", "source", str(backup)).stdout)
    assert summary == {"Name": "source", "File": str(backup), "Size": backup.stat().st_size}

    assert cli("volume", "restore", "target", str(backup)).stdout == "target\n"
    restored = berth_root / "volumes" / "target" / "_data" / "notes" / "todo.txt"
    assert restored.read_text() == "ship it\n"


def test_prune_needs_confirmation_and_keeps_named_volumes(cli) -> None:
    cli("volume", "create", "named")
    unconfirmed = cli("volume", "prune", check=False)
    assert unconfirmed.returncode == 125 and "pass -f" in unconfirmed.stderr
    assert cli("volume", "prune", "-f").stdout == ""
    assert cli("volume", "ls", "-q").stdout.split() == ["named"]
    assert cli("volume", "prune", "-f", "--all").stdout.split() == ["Deleted", "Volumes:", "named"]
