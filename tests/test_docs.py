"""The documentation stays true to the code: the front page stays a front page, every relative
link (and its #anchor) leads somewhere, and every ``--option`` the pages name is an option of the
tool they name it for, as that tool's ``--help`` shows it.

Which tool an option belongs to: in a code block or an inline code span, the tool named before
it (``lp-synth prep --like``: ``lp-synth prep``'s help; ``torchrun ... $(which lp-train) --out``:
``lp-train``'s); an option with no tool before it in a code block belongs to another program
(``torchrun``, ``pip``, a shell variable) and is not checked, except in ``make`` variables that
pass options to a tool (``SYNTH_OPTS="..."``). On a tool page, an option with no tool named
before it belongs to the page's tools (any of their commands): so an option of another tool is
written with that tool's name in the same code span (``lp-synth --lesion-scale`` in train.md).

The tools are found as the console scripts of ``setup.cfg`` and run in-process (click's
``CliRunner``), so this follows the entry points wherever the modules move.
"""

from __future__ import annotations

import configparser
import importlib
import re
from functools import cache
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
FRONT_PAGE = REPO / "README.md"
MAX_FRONT_PAGE_LINES = 250

#: each tool page and the console scripts it documents
TOOL_PAGES = {
    "bank.md": ("lp-bank",),
    "synth.md": ("lp-synth",),
    "train.md": ("lp-train", "lp-eval", "lp-knn", "lp-select"),
    "predict.md": ("lp-predict", "lp-export"),
}
#: Makefile variables whose value is passed to a tool as options
MAKE_VARIABLES = {
    "SYNTH_OPTS": "lp-synth",
    "DEMO_SYNTH": "lp-synth",
    "TRAIN_OPTS": "lp-train",
    "DEMO_TRAIN": "lp-train",
}

FENCE = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.MULTILINE | re.DOTALL)
SPAN = re.compile(r"`([^`]+)`")
OPTION = re.compile(r"(?<![\w-])--[A-Za-z][\w-]*")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


def markdown_files() -> list[Path]:
    """README.md and every page under docs/."""
    return [FRONT_PAGE, *sorted(DOCS.glob("*.md"))]


def split_markdown(text: str) -> tuple[list[str], str]:
    """The fenced code blocks' contents, and the prose with the blocks blanked out."""
    blocks = [m.group(1) for m in FENCE.finditer(text)]
    return blocks, FENCE.sub("\n", text)


# ---- the tools, from setup.cfg's console scripts


@cache
def console_scripts() -> dict[str, str]:
    """``{script name: "module:function"}`` from ``[options.entry_points]``."""
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg", encoding="utf-8")
    scripts = {}
    for line in config["options.entry_points"]["console_scripts"].strip().splitlines():
        name, _, target = line.partition("=")
        scripts[name.strip()] = target.strip()
    return scripts


@cache
def command(tool: str) -> click.Command:
    """The click command behind a console script: the entry point itself, or the click command
    its function calls (``def main_train(): train_command(prog_name="lp-train")``)."""
    module_name, _, attribute = console_scripts()[tool].partition(":")
    module = importlib.import_module(module_name)
    entry = getattr(module, attribute)
    if isinstance(entry, click.Command):
        return entry
    called = [getattr(module, n, None) for n in entry.__code__.co_names]
    found = [c for c in called if isinstance(c, click.Command)]
    assert len(found) == 1, f"{tool}: cannot tell which click command {attribute} runs"
    return found[0]


def subcommands(tool: str) -> dict[str, click.Command]:
    """A click group's subcommands by name; empty for a plain command."""
    cmd = command(tool)
    return dict(cmd.commands) if isinstance(cmd, click.Group) else {}


@cache
def help_text(tool: str, sub: str | None = None) -> str:
    """``TOOL [SUB] --help`` as the user sees it."""
    args = [sub, "--help"] if sub else ["--help"]
    result = CliRunner().invoke(command(tool), args, prog_name=tool)
    assert result.exit_code == 0, f"{tool} {sub or ''} --help failed: {result.output}"
    return result.output


def in_help(option: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def every_help(tools: tuple[str, ...]) -> str:
    """The help of the tools and of every subcommand of theirs, together."""
    return "\n".join(help_text(t, s) for t in tools for s in (None, *sorted(subcommands(t))))


# ---- which tool each option is named for


def tool_pattern() -> re.Pattern:
    names = sorted(console_scripts(), key=len, reverse=True)
    return re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, names)) + r")(?![\w-])")


def attributed(text: str) -> tuple[list[str], list[tuple[str, str | None, str]]]:
    """The options of ``text`` (one code line or span) before any tool is named, and
    ``(tool, subcommand or None, option)`` for each option after a tool's name."""
    matches = list(tool_pattern().finditer(text))
    loose = OPTION.findall(text[: matches[0].start()] if matches else text)
    owned = []
    for i, m in enumerate(matches):
        tool = m.group(1)
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        segment = text[m.end() : end]
        words = segment.split()
        sub = words[0] if words and words[0] in subcommands(tool) else None
        owned += [(tool, sub, option) for option in OPTION.findall(segment)]
    return loose, owned


def make_variables(text: str) -> tuple[str, list[tuple[str, None, str]]]:
    """``text`` without its ``SYNTH_OPTS="..."``-like assignments, and their options, each
    named for the tool the variable passes it to."""
    owned = []
    for variable, tool in MAKE_VARIABLES.items():
        assignment = re.compile(rf"\b{variable}=\"([^\"]*)\"")
        for value in assignment.findall(text):
            owned += [(tool, None, option) for option in OPTION.findall(value)]
        text = assignment.sub(" ", text)
    return text, owned


def code_lines(block: str) -> list[str]:
    """A code block's logical lines (backslash continuations joined)."""
    return block.replace("\\\n", " ").splitlines()


def option_uses(path: Path) -> tuple[list[str], list[tuple[str, str | None, str]]]:
    """Every option of a page: those with no tool named before them (prose and inline code
    only), and those named for a tool (code blocks, inline code, make variables)."""
    blocks, prose = split_markdown(path.read_text(encoding="utf-8"))
    loose, owned = [], []
    for block in blocks:
        for line in code_lines(block):
            line, passed = make_variables(line)
            owned += passed + attributed(line)[1]  # options before a tool: another program's
    for span in SPAN.findall(prose):
        span, passed = make_variables(span)
        span_loose, span_owned = attributed(span)
        loose += span_loose
        owned += passed + span_owned
    loose += OPTION.findall(SPAN.sub(" ", prose))
    return loose, owned


def test_every_console_script_has_a_tool_page():
    documented = {tool for tools in TOOL_PAGES.values() for tool in tools}
    assert documented == set(console_scripts())


@pytest.mark.parametrize("page", [*TOOL_PAGES, "../README.md"])
def test_the_options_named_in_the_docs_are_in_the_tools_help(page):
    path = (DOCS / page).resolve()
    loose, owned = option_uses(path)
    wrong = [
        f"{tool}{' ' + sub if sub else ''} {option}"
        for tool, sub, option in owned
        if not in_help(option, help_text(tool, sub))
    ]
    tools = TOOL_PAGES.get(page)
    if tools:  # on a tool page, an option without a tool is one of the page's tools'
        pooled = every_help(tools)
        wrong += [f"{'/'.join(tools)} {o}" for o in loose if not in_help(o, pooled)]
        assert len(loose) + len(owned) >= 10, f"{page}: too few options found to check"
        text = path.read_text(encoding="utf-8")
        assert all(tool in text for tool in tools), f"{page} does not name {tools}"
    assert not wrong, f"{path.name} names options that --help does not list: {sorted(set(wrong))}"


# ---- the front page and the links


def test_the_front_page_stays_short():
    lines = FRONT_PAGE.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_FRONT_PAGE_LINES, (
        f"README.md has {lines} lines (at most {MAX_FRONT_PAGE_LINES}): move reference to docs/"
    )


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def anchors(path: Path) -> set[str]:
    _, prose = split_markdown(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(prose):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def test_every_relative_link_leads_to_a_file_and_an_anchor_that_exist():
    broken = []
    for path in markdown_files():
        _, prose = split_markdown(path.read_text(encoding="utf-8"))
        for target in LINK.findall(SPAN.sub(" ", prose)):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                broken.append(f"{path.relative_to(REPO)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{path.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_docs_index_lists_every_page():
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    linked = {t.partition("#")[0] for t in LINK.findall(index)}
    missing = [p.name for p in DOCS.glob("*.md") if p.name != "README.md" and p.name not in linked]
    assert not missing, f"docs/README.md does not list {missing}"


PYTHON_FENCE = re.compile(r"^[ \t]*```python\n(.*?)^[ \t]*```[ \t]*$", re.MULTILINE | re.DOTALL)
DOTTED = re.compile(r"`(lesionpaste(?:\.\w+)+)(?:\(|`)")


def _resolves(dotted: str) -> bool:
    """Whether ``lesionpaste.a.b.name`` is a module, or a name in one."""
    words = dotted.split(".")
    for cut in range(len(words), 0, -1):
        try:
            thing = importlib.import_module(".".join(words[:cut]))
        except ImportError:
            continue
        try:
            for word in words[cut:]:
                thing = getattr(thing, word)
        except AttributeError:
            return False
        return True
    return False


def test_the_python_the_pages_show_parses_and_imports_what_exists():
    import ast

    wrong = []
    for page in markdown_files():
        text = page.read_text(encoding="utf-8")
        for block in PYTHON_FENCE.findall(text):
            tree = ast.parse(block)  # a SyntaxError fails the test with the page's block
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module.startswith("lesionpaste"):
                    wrong += [
                        f"{page.name}: from {node.module} import {alias.name}"
                        for alias in node.names
                        if not _resolves(f"{node.module}.{alias.name}")
                    ]
        wrong += [
            f"{page.name}: {dotted}"
            for dotted in DOTTED.findall(text)
            if dotted != "lesionpaste.toml"  # the configuration file
            and "__mutmut_" not in dotted  # mutant names (testing.md)
            and not _resolves(dotted)
        ]
    assert not wrong, wrong


def test_the_resolver_sees_a_name_that_does_not_exist():
    assert _resolves("lesionpaste.train.runs.train_run.TrainRequest")
    assert _resolves("lesionpaste.train.deploy.predict.predict")
    assert _resolves("lesionpaste.errors.LesionPasteError")
    assert not _resolves("lesionpaste.train.scoring.restore")
    assert not _resolves("lesionpaste.train.runs.train_run.no_such_name")
