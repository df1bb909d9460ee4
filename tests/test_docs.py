"""The docs hold together: every relative link resolves (file and heading), every file path they name exists, every
configuration key and TUI key is documented, and the README's quick-start figures are docs/benchmarks.md's."""

from __future__ import annotations

import ast
import html
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]

LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~)")
INLINE_CODE = re.compile(r"`[^`\n]*`")
# files the docs name that exist only once made: the packs' GPU check writes its record into the package
MADE_LATER = {"unettui/pack_check.json"}


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code (links there are examples, not links)."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        out.append("" if fenced else INLINE_CODE.sub("", line))
    return "\n".join(out)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its rendered text, lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = html.unescape(text.replace("`", "")).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: dict[str, int] = {}
    out = set()
    fenced = False
    for line in path.read_text().splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
        if fenced:
            continue
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(1))
            n = found.get(base, 0)
            found[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[str]:
    return [m.group(1) for m in LINK.finditer(prose(path.read_text()))]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc):
    problems = []
    for target in links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = (doc.parent / path_part).resolve() if path_part else doc
        if not dest.exists():
            problems.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{target}: no heading '#{anchor}' in {dest.relative_to(ROOT)}")
    assert not problems, f"{doc.relative_to(ROOT)}: " + "; ".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_path_named_exists(doc):
    """A path in backticks that starts at the repository (unettui/, scripts/, tests/, docs/) or inside the package
    (core/, tui/, cli/, cluster/) names a file or folder that exists (globs: at least one match)."""
    missing = []
    for token in re.findall(r"`([^`\s]+)`", doc.read_text()):
        if not re.match(r"^(unettui|scripts|tests|docs|core|tui|cli|cluster)/[\w./*-]*$", token) or token in MADE_LATER:
            continue
        base = ROOT if token.split("/")[0] in ("unettui", "scripts", "tests", "docs") else ROOT / "unettui"
        if not any(base.glob(token.rstrip("/"))):
            missing.append(token)
    assert not missing, f"{doc.relative_to(ROOT)} names paths that do not exist: {missing}"


def quickstart_block(path: Path) -> str:
    text = path.read_text()
    blocks = re.findall(r"<!-- quickstart -->\n(.*?)<!-- /quickstart -->", text, flags=re.S)
    assert len(blocks) == 1, f"{path.name}: expected one <!-- quickstart --> ... <!-- /quickstart --> block"
    return blocks[0]


def test_readme_quotes_the_quickstart_figures_of_the_benchmarks_page():
    assert quickstart_block(ROOT / "README.md") == quickstart_block(ROOT / "docs" / "benchmarks.md")


def test_readme_stays_a_five_minute_read():
    assert len((ROOT / "README.md").read_text().splitlines()) < 300


def test_every_guide_page_is_in_the_index():
    index = set(links(ROOT / "docs" / "README.md"))
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")} - {"README.md"}
    assert pages <= {t.partition("#")[0] for t in index}, pages - index


def test_every_configuration_key_has_a_row_in_experiments_md():
    from unettui.core.define.config import KEYS

    rows = [line for line in (ROOT / "docs" / "experiments.md").read_text().splitlines() if line.startswith("| `")]
    documented = {key for row in rows for key in re.findall(r"`([\w.]+)`", row.split("|")[1])}
    assert set(KEYS) <= documented, set(KEYS) - documented


KEY_NAMES = {"question_mark": "?", "plus": "+", "minus": "-", "slash": "/", "right_square_bracket": "]",
             "left_square_bracket": "["}


def test_every_tui_key_has_a_row_in_tui_md():
    """Every key of the TUI's action table (read from its source: no Textual import) is named in tui.md's Keys."""
    tree = ast.parse((ROOT / "unettui" / "tui" / "actions.py").read_text())
    actions = [node for node in ast.walk(tree)
               if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Action"
               and len(node.args) >= 4 and all(isinstance(a, ast.Constant) for a in node.args[:4])]
    assert len(actions) > 30
    text = (ROOT / "docs" / "tui.md").read_text()
    keys_section = text[text.index("## Keys"):]
    missing = []
    for action in actions:
        keys, label = action.args[0].value, action.args[3].value
        if not keys:  # in the command palette only: named by its label
            missing += [] if label in keys_section else [label]
        for key in filter(None, keys.split(",")):
            shown = KEY_NAMES.get(key, key)
            missing += [] if f"`{shown}`" in keys_section else [shown]
    assert not missing, f"docs/tui.md's Keys table lacks {missing}"
