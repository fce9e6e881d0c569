"""virsh's command-line splitting, checked against libvirt's virshtest cases."""

from __future__ import annotations

import pytest

from nsvirt.shell.parse import UnbalancedQuote, split_argv, split_commands

# (input, the words of the `echo` commands) from libvirt's multiple-commands tests
CASES = [
    (" echo a; echo b;", [["echo", "a"], ["echo", "b"]]),
    ("\necho a\n echo b\n", [["echo", "a"], ["echo", "b"]]),
    ("ec\\\nho a\n echo \\\n b;", [["echo", "a"], ["echo", "b"]]),
    ('"ec\\\nho" a\n echo "\\\n b";', [["echo", "a"], ["echo", " b"]]),
    ("ec\\\nho a\n echo '\\\n b';", [["echo", "a"], ["echo", "\\\n b"]]),
    ("echo a # b", [["echo", "a"]]),
    ("echo a #b\necho c", [["echo", "a"], ["echo", "c"]]),
    ("echo a # b\\\necho c", [["echo", "a"], ["echo", "c"]]),
    ("echo a '#' b", [["echo", "a", "#", "b"]]),
    ("echo a \\# b", [["echo", "a", "#", "b"]]),
    ("#unbalanced; 'quotes\"\necho a # b", [["echo", "a"]]),
    ("list --all; dominfo web", [["list", "--all"], ["dominfo", "web"]]),
    ("define 'my file.xml'", [["define", "my file.xml"]]),
]


@pytest.mark.parametrize(("text", "commands"), CASES)
def test_split_commands(text: str, commands: list[list[str]]) -> None:
    assert split_commands(text) == commands


def test_unbalanced_quote() -> None:
    with pytest.raises(UnbalancedQuote):
        split_commands("echo 'a")


def test_split_argv_on_lone_semicolon() -> None:
    assert split_argv(["list", "--all", ";", "uri"]) == [["list", "--all"], ["uri"]]
    assert split_argv(["echo", "a;b"]) == [["echo", "a;b"]]
