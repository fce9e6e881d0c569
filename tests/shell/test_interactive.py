"""The interactive shell (cmd2), driven in-process: same commands, same outputs,
virsh's `;` splitting, completion of commands, options and domain names."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from nsvirt.driver import connect
from nsvirt.shell.app import NsvirshApp, candidates
from nsvirt.shell.commands import COMMANDS, Context

UUID = "05621346-d353-4bab-acc3-5004556ddd1a"


@pytest.fixture
def app(tmp_path: Path) -> NsvirshApp:
    uri = f"lxc:///embed?root={tmp_path}"
    conn = connect(uri)
    for name, uuid in (("web", UUID), ("db", None)):
        uuid_el = f"<uuid>{uuid}</uuid>" if uuid else ""
        conn.define_xml(f"<domain type='lxc'><name>{name}</name>{uuid_el}<memory>1024</memory>"
                        "<os><type>exe</type></os></domain>")  # fmt: skip
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(uri, out, err)
    return NsvirshApp(ctx, stdin=io.StringIO(), stdout=out, history="")


def run(app: NsvirshApp, line: str) -> tuple[str, str]:
    out, err = app.ctx.out, app.ctx.err
    out.seek(0), out.truncate(), err.seek(0), err.truncate()
    app.onecmd_plus_hooks(line)
    return out.getvalue(), err.getvalue()


def test_prompt_and_commands_from_the_table(app: NsvirshApp) -> None:
    assert app.prompt == "nsvirsh # "
    visible = set(app.get_visible_commands())
    assert set(COMMANDS) <= visible
    assert not visible & {"alias", "macro", "shell", "run_pyscript"}


def test_list_in_virsh_layout(app: NsvirshApp) -> None:
    out, err = run(app, "list --all")
    assert out == (" Id   Name   State\n"
                   "-----------------------\n"
                   " -    db     shut off\n"
                   " -    web    shut off\n\n")  # fmt: skip
    assert err == ""


def test_semicolon_runs_both_commands(app: NsvirshApp) -> None:
    out, _ = run(app, "domstate web; domuuid web")
    assert out == f"shut off\n\n{UUID}\n\n"


def test_errors_are_virsh_lines(app: NsvirshApp) -> None:
    assert run(app, "dominfo nope") == ("", "error: failed to get domain 'nope'\n")
    assert run(app, "frobnicate") == ("", "error: unknown command: 'frobnicate'\n")
    assert run(app, "list --bogus")[1] == "error: command 'list' doesn't support option --bogus\n"
    assert app.last_status == 1
    out, _ = run(app, "uri")
    assert app.last_status == 0 and out.startswith("lxc:///embed?root=")


def test_help(app: NsvirshApp) -> None:
    out, _ = run(app, "help")
    assert "dominfo" in out and "domain information" in out
    out, _ = run(app, "help dominfo")
    assert out.startswith("  NAME\n    dominfo - domain information\n")  # virsh's layout


def test_quit_exit_and_json(app: NsvirshApp) -> None:
    out, _ = run(app, "domstate --json web")
    assert out == '{"state": "shut off", "reason": "unknown"}\n'
    assert app.onecmd_plus_hooks("quit") is True
    assert app.onecmd_plus_hooks("exit") is True


def test_completion_of_domains_and_options(app: NsvirshApp) -> None:
    ctx = app.ctx
    assert candidates(ctx, COMMANDS["dominfo"], "") == ["db", "web"]
    assert candidates(ctx, COMMANDS["start"], "") == ["db", "web"]  # inactive ones
    assert candidates(ctx, COMMANDS["destroy"], "") == []  # none is running
    assert "--all" in candidates(ctx, COMMANDS["list"], "--")
    assert "--reason" in candidates(ctx, COMMANDS["domstate"], "--r")
    completions = app.complete_dominfo("w", "dominfo w", 8, 9)
    assert [i.text for i in completions.items] == ["web"]


def test_connect_switches_uri(app: NsvirshApp, tmp_path: Path) -> None:
    other = f"lxc:///embed?root={tmp_path / 'other'}"
    run(app, f"connect {other}")
    out, _ = run(app, "uri")
    assert out == f"{other}\n\n"
    out, _ = run(app, "list --all --name")
    assert out == "\n"


def test_connect_readonly_refuses_changes(app: NsvirshApp) -> None:
    uri = app.ctx.conn.uri
    assert run(app, f"connect {uri} --readonly") == ("", "")
    _, err = run(app, "undefine web")
    assert err.splitlines()[-1] == (
        "error: operation forbidden: read only access prevents virDomainUndefine"
    )
    assert run(app, "domstate web")[0] == "shut off\n\n"  # reading is fine
    run(app, f"connect {uri}")  # a read-write connection again
    assert run(app, "undefine web")[0] == "Domain 'web' has been undefined\n\n"
