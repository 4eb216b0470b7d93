"""The jail as operators and project members meet it: who may change what runs in it, the self-test, running a
command in it by hand, and the unsafe mode that every page, the admin, `doctor` and `/health` warn about."""

from __future__ import annotations

import json

import pytest

from apps.agents.jail import jail_status
from apps.projects.models import Project
from tests.projects.test_cli import refused, yokeflow

pytestmark = pytest.mark.django_db

JAILED = pytest.mark.jail


# ------------------------------------------------------------------------------------------ who may change it


@pytest.mark.parametrize(("field", "value"), [
    ("setup_command", "cat /etc/hostname > leak"), ("dev_service", "nc -l 9999"),
    ("env_files", ["../../secrets/*"]), ("network", "registries"),
])
def test_an_operator_cannot_change_what_runs_in_the_jail(api_client, project, operator, field, value):
    before = getattr(project, field)
    response = api_client(operator).patch(f"/api/projects/{project.slug}", json.dumps({field: value}),
                                          content_type="application/json")
    assert response.status_code == 403, response.content
    assert field in response.content.decode()
    project.refresh_from_db()
    assert getattr(project, field) == before


def test_an_operator_may_still_change_other_settings_and_repeat_the_current_jail_ones(api_client, project, operator):
    response = api_client(operator).patch(
        f"/api/projects/{project.slug}", json.dumps({"max_concurrency": 5, "setup_command": project.setup_command}),
        content_type="application/json")
    assert response.status_code == 200, response.content
    project.refresh_from_db()
    assert project.max_concurrency == 5


def test_the_owner_sets_the_jail_settings_but_only_staff_opens_the_network(api_client, project, owner, staff):
    patch = {"setup_command": "pip install -e .", "network": "registries"}
    assert api_client(owner).patch(f"/api/projects/{project.slug}", json.dumps(patch),
                                   content_type="application/json").status_code == 200
    denied = api_client(owner).patch(f"/api/projects/{project.slug}", json.dumps({"network": "open"}),
                                     content_type="application/json")
    assert denied.status_code == 403
    project.refresh_from_db()
    assert (project.setup_command, project.network) == ("pip install -e .", "registries")
    allowed = api_client(staff).patch(f"/api/projects/{project.slug}", json.dumps({"network": "open"}),
                                      content_type="application/json")
    assert allowed.status_code == 200, allowed.content
    assert Project.objects.get(pk=project.pk).network == "open"


def test_an_unknown_network_mode_is_a_422_naming_the_field(api_client, project, owner):
    response = api_client(owner).patch(f"/api/projects/{project.slug}", json.dumps({"network": "everything"}),
                                       content_type="application/json")
    assert response.status_code == 422 and "network" in response.content.decode()
    project.refresh_from_db()
    assert project.network == "none"


# ------------------------------------------------------------------------------------------ operators' tools


@JAILED
def test_sandbox_check_prints_the_probes_and_passes():
    output = yokeflow("sandbox", "check")
    assert "bubblewrap" in output and "no escape in" in output
    assert "read a file outside the worktree" in output and "READ" not in output


def test_sandbox_check_fails_in_the_unsafe_mode(settings):
    settings.SANDBOX = "policy"
    error = refused("sandbox", "check")
    assert "SANDBOX=policy" in str(error)


@JAILED
def test_sandbox_run_runs_a_command_as_an_agent_would(tmp_path, capsys):
    workdir = tmp_path / "wt"
    workdir.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep\n")

    yokeflow("sandbox", "run", str(workdir), "--", "echo made > inside.txt; id -u")
    assert capsys.readouterr().out.strip().endswith("1000")
    assert (workdir / "inside.txt").read_text() == "made\n"

    # The write lands in the jail's private /tmp (the worktree's parents are an empty tmpfs there), not on the host.
    yokeflow("sandbox", "run", str(workdir), "--", f"p={outside}; echo pwned > $p")
    assert outside.read_text() == "keep\n"
    error = refused("sandbox", "run", str(workdir), "--", f"cat {outside}")
    assert "exit code 1" in str(error)
    assert "keep" not in capsys.readouterr().out


def test_sandbox_run_without_a_command_is_one_readable_line(tmp_path):
    assert "give the command after --" in str(refused("sandbox", "run", str(tmp_path)))
    assert "is not a directory" in str(refused("sandbox", "run", str(tmp_path / "missing"), "--", "true"))


# ------------------------------------------------------------------------------------------ the unsafe mode


def test_health_and_doctor_show_the_jail(client, settings):
    jail = next(c for c in client.get("/health").json()["checks"] if c["name"] == "jail")
    assert jail["message"].startswith("jail: bubblewrap") if jail_status().available else not jail["ok"]

    settings.SANDBOX = "policy"
    jail = next(c for c in client.get("/health").json()["checks"] if c["name"] == "jail")
    assert not jail["ok"] and "UNSAFE" in jail["message"]


def test_every_page_warns_in_the_unsafe_mode(client, owner, settings, project):
    client.force_login(owner)
    assert "Unsafe mode" not in client.get("/").content.decode()
    settings.SANDBOX = "policy"
    assert "Unsafe mode (SANDBOX=policy)" in client.get("/").content.decode()
    assert "Unsafe mode (SANDBOX=policy)" in client.get(f"/projects/{project.slug}/").content.decode()


def test_the_admin_shows_the_jails_mode_and_version(client, staff, settings):
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    page = client.get("/admin/").content.decode()
    assert "Command jail:" in page
    settings.SANDBOX = "policy"
    assert "UNSAFE: SANDBOX=policy" in client.get("/admin/").content.decode()
