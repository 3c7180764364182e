"""Documentation that cannot drift: every example in README.md and docs/*.md runs, every command line parses.

**Python blocks** (```` ```python ````) run in this process, in order, one namespace per Markdown file (a
reader's session: a later block may use what an earlier one defined), in an empty working folder. Files an
example reads are made there first, when its file's blocks name them (``FILES``): a finished run of
SE-ResNet-20 as `senet train` lays it out (random weights, no training), a state dict of ours, the SE
authors' file in its legacy naming (random weights), and, in the pretrained cache, the akamaster ResNet-20 the
repository ships (tests/data), so `pretrained=True` finds it without a download.

An HTML comment on the line right before a block's fence (invisible once rendered) tells this test what to
change, and nothing else can:

- ``<!-- docs-test: replace `OLD` with `NEW`; replace ... -->`` substitutes text before running (smaller
  sizes, fewer rounds); each OLD must occur in the block, so a substitution cannot outlive its example.
- ``<!-- docs-test: skip (why) -->`` only compiles the block. Skips are for what cannot run offline (a
  download); ``SKIPPED`` lists each one with its reason, and the test fails when the docs skip anything else.

**Command lines** quoted in shell blocks (```` ```bash ````, ```` ```sh ````, ```` ```console ```` and
unlabelled ones: each line starting ``senet `` or ``$ senet ``; in a synopsis, the indented lines that follow
belong to it) and in inline code spans (`` `senet ...` ``) are parsed by senet's own parser
(``senet.cli.main.build_parser``), which runs nothing. A quote may leave out required arguments (it names part
of a command) and use placeholders in capitals (``--epochs N``), but every option it names must exist, and
every value must be one the parser takes. A synopsis (``[--depth N]``, ``a|b``, ``...``) is checked option by
option: the command exists, each ``--option`` is one of its options, and the listed alternatives of an option
with choices (``--format table|markdown``) are among its choices.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

import senet
from senet.cli import main as cli_main
from senet.convert import convert_state_dict, naming_options
from senet.data import CIFAR10_CLASSES
from senet.pretrained import pretrained_dir
from senet.train.checkpoint import save_weights
from senet.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = ("", "bash", "sh", "console", "shell")
SKIPPED = {  # (file, first line of the block): why it cannot run here
    ("docs/pretrained.md", 'senet.create_model("se_resnet50", pretrained=True)'): "downloads the 110 MB checkpoint",
}
AKAMASTER_RESNET20 = Path(__file__).resolve().parent / "data" / "akamaster-cifar10" / "resnet20-12fca82f.th"

# ---------------------------------------------------------------------------------------------------------
# Reading the Markdown


@dataclass
class Block:
    """A fenced block: where it starts (1-based line of its fence), its language, text and directives."""

    doc: str
    line: int
    lang: str
    text: str
    skip: str | None = None
    replace: list[tuple[str, str]] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


_DIRECTIVE = re.compile(r"<!--\s*docs-test:(.*?)-->")
_REPLACE = re.compile(r"^replace `([^`]*)` with `([^`]*)`$")
_SKIP = re.compile(r"^skip \((.+)\)$")


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, with the directive of the line above each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = re.match(r"^\s*```(\S*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith("```"):
            body.append(lines[i])
            i += 1
        block = Block(_relative(path), start + 1, fence.group(1).lower(), "\n".join(body))
        directive = _DIRECTIVE.search(lines[start - 1]) if start else None
        for item in (directive.group(1).split(";") if directive else []):
            item = item.strip()
            if m := _REPLACE.match(item):
                block.replace.append((m.group(1), m.group(2)))
            elif m := _SKIP.match(item):
                block.skip = m.group(1)
            else:
                raise AssertionError(f"{block.where}: unknown docs-test directive {item!r}")
        found.append(block)
        i += 1
    return found


def _prose(path: Path) -> str:
    """The file's text outside fenced blocks (where inline code spans are)."""
    return re.sub(r"^\s*```.*?^\s*```[^\n]*$", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)


def command_lines(path: Path) -> list[tuple[str, str]]:
    """(where, command line) for every `senet ...` quoted in a shell block or an inline code span."""
    found = []
    for block in blocks(path):
        if block.lang not in SHELL:
            continue
        current = None
        for offset, raw in enumerate(block.text.splitlines(), start=1):
            line = re.sub(r"\s+#.*$", "", raw.rstrip())
            text = line.strip().removeprefix("$ ")
            if re.match(r"senet [\w-]+:", text):  # a message quoted (`senet train: error: ...`), not a command
                current = None
            elif text.startswith("senet ") or text == "senet":
                current = [f"{block.where}+{offset}", re.split(r"\s{3,}", text)[0]]
                found.append(current)
            elif current is not None and raw[:1].isspace() and text[:1] in "[-":  # a synopsis goes on, indented
                current[1] += " " + re.split(r"\s{3,}", text)[0]
            elif current is not None and raw[:1].isspace():  # the synopsis' description column
                continue
            else:
                current = None
    for m in re.finditer(r"`(senet [^`]+)`", _prose(path)):
        if re.match(r"senet [\w-]+:", m.group(1)):
            continue
        found.append([f"{_relative(path)} (inline)", " ".join(m.group(1).split())])
    return [tuple(f) for f in found]


# ---------------------------------------------------------------------------------------------------------
# Files the examples read


def _run_folder(root: Path) -> None:
    """A finished run of SE-ResNet-20 on CIFAR-10 as `senet train` lays it out (random weights, not trained)."""
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps(TrainConfig(model="se_cifar_resnet20", dataset="cifar10").to_dict()))
    save_weights(senet.models.create_model("se_cifar_resnet20").eval(), root / "model.safetensors",
                 metadata={"model": "se_cifar_resnet20"})  # fmt: skip
    (root / "summary.json").write_text(json.dumps({"classes": list(CIFAR10_CLASSES)}))


def _ours(path: Path) -> None:
    torch.save(senet.models.create_model("se_resnet50").state_dict(), path)


def _legacy(path: Path) -> None:
    model = senet.models.create_model("se_resnet50", **naming_options("legacy", "se_resnet50"))
    torch.save(convert_state_dict(model.state_dict(), model="se_resnet50", target="legacy"), path)


def _akamaster_in_cache(_: Path) -> None:
    pretrained_dir().mkdir(parents=True, exist_ok=True)
    shutil.copyfile(AKAMASTER_RESNET20, pretrained_dir() / AKAMASTER_RESNET20.name)


FILES: dict[str, Callable[[Path], None]] = {  # what a block names -> how the file is made (at that path)
    "runs/se_cifar_resnet20-20250101-120000": _run_folder,
    "se_resnet50.pth": _ours,
    "se_resnet50-ce0d4300.pth": _legacy,
    'create_model("cifar_resnet20", pretrained=True)': _akamaster_in_cache,
}


# ---------------------------------------------------------------------------------------------------------
# Python examples

PYTHON_DOCS = [d for d in DOCS if any(b.lang == "python" for b in blocks(d))]


def _source(block: Block) -> str:
    text = block.text
    for old, new in block.replace:
        assert old in text, f"{block.where}: `{old}` is no longer in the block; update its docs-test directive"
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize("doc", PYTHON_DOCS, ids=_relative)
def test_python_examples_run(doc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    python = [b for b in blocks(doc) if b.lang == "python"]
    everything = "\n".join(b.text for b in python)
    for name, make in FILES.items():
        if name in everything:
            make(tmp_path / name)
    namespace: dict = {"__name__": "__docs__"}
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            for block in python:
                code = compile(_source(block), block.where, "exec")  # a skipped block still has to be Python
                if block.skip is None:
                    exec(code, namespace)
    finally:  # pytest keeps its temporary folders: not the 100 MB state dicts of ResNet-50s
        for path in tmp_path.iterdir():
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def test_only_the_listed_blocks_are_skipped():
    skipped = {(b.doc, b.text.strip().splitlines()[0].split("  #")[0].strip()): b.skip
               for d in DOCS for b in blocks(d) if b.skip is not None}  # fmt: skip
    assert skipped == SKIPPED


def test_every_directive_sits_on_a_python_block():
    for doc in DOCS:
        for block in blocks(doc):
            assert block.lang == "python" or not (block.skip or block.replace), block.where


# ---------------------------------------------------------------------------------------------------------
# Command lines

PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*(\.\.\.)?$")  # NAME, DIR, IMAGES...
SYNOPSIS = re.compile(r"[\[\]|]|\.\.\.")


class _Refused(Exception):
    pass


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Every option of a command and of its actions (`senet pretrained list --json`)."""
    found = dict(parser._option_string_actions)
    for sub in _subparsers(parser).values():
        found.update(_options(sub))
    return found


@pytest.fixture(scope="module")
def parser():
    built = cli_main.build_parser()

    def refuse(self, message):
        raise _Refused(message)

    return built, refuse


def _check_options(command: str, where: str, parser: argparse.ArgumentParser) -> None:
    """The command exists, each --option is one of its options, listed alternatives are among the choices."""
    words = command.split()
    commands = _subparsers(parser)
    if len(words) > 1 and words[1].startswith("-"):  # `senet --help`
        options = dict(parser._option_string_actions)
    else:
        assert len(words) > 1 and words[1] in commands, f"{where}: `{command}`: no command {words[1:2]}"
        options = _options(commands[words[1]])
    plain = command.replace("[", " ").replace("]", " ")
    for m in re.finditer(r"(?<![\w-])(--[a-z][a-z0-9-]*)(?:\s+([\w.-]+(?:\|[\w.-]+)+))?", plain):
        flag, alternatives = m.group(1), m.group(2)
        assert flag in options, f"{where}: `{command}`: it has no option {flag}"
        choices = options[flag].choices
        if alternatives and choices is not None:
            for value in alternatives.split("|"):
                if not PLACEHOLDER.match(value) and value != "...":
                    assert value in choices, f"{where}: `{command}`: {flag} {value} is not one of {list(choices)}"


def _parse(command: str, where: str, parser: argparse.ArgumentParser, refuse) -> None:
    """Parses a command line quoted in full (or in part, leaving out required arguments), running nothing."""
    argv = command.split()[1:]
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(io.StringIO()):
        patch.setattr(cli_main._Parser, "error", refuse)
        try:
            parser.parse_args(argv)
        except _Refused as e:
            message = str(e)
            if message.startswith("the following arguments are required"):
                return
            if message.endswith("expected one argument") and argv[-1].startswith("--"):  # `senet eval --checkpoint`
                return
            value = re.search(r"invalid (?:choice|\w+ value): '([^']*)'", message)
            assert value and PLACEHOLDER.match(value.group(1)), f"{where}: `{command}`: {message}"
        except SystemExit as e:  # --help, --version
            assert e.code in (0, None), f"{where}: `{command}` exits with {e.code}"


COMMANDS = [c for d in DOCS for c in command_lines(d)]


def test_the_docs_quote_command_lines():
    assert len(COMMANDS) > 100  # the extraction finds them (a change of layout must not empty this test)
    assert sum(1 for _, c in COMMANDS if SYNOPSIS.search(c)) > 15


@pytest.mark.parametrize("where, command", COMMANDS, ids=[f"{w}: {c}"[:90] for w, c in COMMANDS])
def test_command_lines_parse(where, command, parser):
    built, refuse = parser
    _check_options(command, where, built)
    if not SYNOPSIS.search(command):
        _parse(command, where, built, refuse)
