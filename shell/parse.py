"""Split a virsh command line into commands and words, as virsh's own parser does.

`;` and newlines end a command; a `#` at the start of a word comments out the
rest of the line; single quotes are literal; inside double quotes and outside
quotes a backslash escapes the next character, and backslash-newline joins
lines. This runs before cmd2 sees a line: cmd2 treats `;` as a terminator and
drops what follows it.
"""

from __future__ import annotations


class UnbalancedQuote(ValueError):
    pass


def split_commands(text: str) -> list[list[str]]:
    """Return the commands in `text`, each a list of words; empty commands are dropped."""
    commands: list[list[str]] = []
    words: list[str] = []
    word: list[str] = []
    in_word = False
    quote = ""
    i = 0

    def end_word() -> None:
        nonlocal word, in_word
        if in_word:
            words.append("".join(word))
        word, in_word = [], False

    def end_command() -> None:
        nonlocal words
        end_word()
        if words:
            commands.append(words)
        words = []

    while i < len(text):
        c = text[i]
        if quote == "'":
            if c == "'":
                quote = ""
            else:
                word.append(c)
        elif quote == '"':
            if c == '"':
                quote = ""
            elif c == "\\" and i + 1 < len(text):
                i += 1
                if text[i] != "\n":  # backslash-newline vanishes
                    word.append(text[i])
            else:
                word.append(c)
        elif c in " \t":
            end_word()
        elif c in ";\n":
            end_command()
        elif c == "#" and not in_word:
            while i + 1 < len(text) and text[i + 1] != "\n":
                i += 1
        elif c == "\\":
            if i + 1 < len(text):
                i += 1
                if text[i] != "\n":
                    word.append(text[i])
                    in_word = True
        elif c in "'\"":
            quote = c
            in_word = True
        else:
            word.append(c)
            in_word = True
        i += 1
    if quote:
        raise UnbalancedQuote("dangling quote")
    end_command()
    return commands


def split_argv(argv: list[str]) -> list[list[str]]:
    """Commands from an argv: a lone `;` word separates them, as in virsh."""
    commands: list[list[str]] = [[]]
    for arg in argv:
        if arg == ";":
            commands.append([])
        else:
            commands[-1].append(arg)
    return [c for c in commands if c]
