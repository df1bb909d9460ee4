"""The core imports without any UI library, and `unettui --help` imports neither torch nor textual."""

import subprocess
import sys


def core_modules() -> list[str]:
    """Every module under unettui/core, found on disk (a new module is checked without editing this test)."""
    import pkgutil

    import unettui.core

    return [m.name for m in pkgutil.walk_packages(unettui.core.__path__, "unettui.core.") if not m.ispkg]


def test_core_imports_without_ui_libraries():
    """One fresh interpreter imports every core module; none may pull in a UI library."""
    modules = core_modules()
    assert len(modules) >= 26 and "unettui.core.runs.status" in modules
    imports = "; ".join(f"import {name}" for name in modules)
    code = (f"import sys; {imports}; "
            "print(','.join(m for m in ('textual', 'typer', 'rich', 'click') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"unettui.core pulled in {out.stdout.strip()}"


def test_cli_help_does_not_import_torch_or_textual():
    code = ("import sys\n"
            "from unettui.cli.app import app\n"
            "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('LOADED', ','.join(m for m in ('torch', 'textual', 'submitit') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Usage" in out.stdout
    assert out.stdout.strip().endswith("LOADED"), out.stdout[-200:]


def test_every_commands_help_stays_light():
    """`--help` of every command and sub-group, found in the Typer app's own command tree (a new command is checked
    without editing this test), imports neither torch, textual, matplotlib nor submitit: one interpreter asks each
    in turn and names the first that loads one."""
    code = ("import sys, typer\n"
            "from unettui.cli.app import app\n"
            "heavy = ('torch', 'textual', 'matplotlib', 'submitit')\n"
            "def walk(cmd, path):\n"
            "    yield path\n"
            "    if isinstance(getattr(cmd, 'commands', None), dict):  # a group (Typer's own, whatever its base)\n"
            "        for name, sub in sorted(cmd.commands.items()):\n"
            "            yield from walk(sub, path + [name])\n"
            "paths = list(walk(typer.main.get_command(app), []))\n"
            "for path in paths:\n"
            "    try:\n        app(path + ['--help'])\n    except SystemExit:\n        pass\n"
            "    loaded = [m for m in heavy if m in sys.modules]\n"
            "    if loaded:\n"
            "        print('HEAVY', ' '.join(['unettui', *path, '--help']), 'loaded', loaded)\n        break\n"
            "print('CHECKED', len(paths), ';'.join(' '.join(p) for p in paths))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY" not in out.stdout, out.stdout.split("HEAVY", 1)[1].splitlines()[0]
    checked = out.stdout.rsplit("CHECKED ", 1)[1].strip()
    count, names = checked.split(" ", 1)
    assert int(count) >= 24, checked  # the app, its commands, and the study group's
    assert {"run", "predict", "evaluate", "study", "study new", "cancel"} <= set(names.split(";")), names


def test_matplotlib_is_imported_only_to_draw_figures():
    """matplotlib (a second or so to import) is loaded by the report's drawing functions only: not by `--help` of any
    command, the TUI's app module, `unettui compare`'s modules, or any core module on import."""
    modules = core_modules()
    code = ("import sys\n"
            "from unettui.cli.app import app\n"
            "for args in (['--help'], ['report', '--help'], ['compare', '--help']):\n"
            "    try:\n        app(args)\n    except SystemExit:\n        pass\n"
            "import unettui.tui.app, unettui.cli.compare_cmd\n"
            + "".join(f"import {name}\n" for name in modules)
            + "print('LOADED', ','.join(m for m in ('matplotlib',) if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--vector" in out.stdout and "Example: unettui compare" in out.stdout
    assert out.stdout.strip().endswith("LOADED"), out.stdout[-200:]


def test_submitit_is_imported_only_to_submit(tmp_path):
    """The SLURM backend's library is loaded by a submission (or inside a task), never by `run --help`, the TUI's
    modules, or a poll of a project that has SLURM claims and records."""
    proj = tmp_path / "p"
    (proj / "runs" / "a").mkdir(parents=True)
    (proj / "runs" / ".slurm").mkdir()
    (proj / "experiments.toml").write_text("[[experiment]]\nid = 'a'\n")
    (proj / "runs" / "a" / "status.json").write_text('{"state": "running", "host": "elsewhere", "heartbeat": 0, '
                                                     '"backend": {"kind": "slurm", "job": "1_0"}}')
    code = ("import sys\n"
            "from unettui.cli.app import app\n"
            "try:\n    app(['run', '--help'])\nexcept SystemExit:\n    pass\n"
            "import unettui.tui.app, unettui.cli.slurm_cmds, unettui.core.runs.slurm_state\n"
            "from unettui.tui.data import ProjectMonitor\n"
            f"ProjectMonitor({str(proj)!r}).poll()\n"
            "print('LOADED', ','.join(m for m in ('submitit',) if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--backend" in out.stdout
    assert out.stdout.strip().endswith("LOADED"), out.stdout[-200:]


def test_no_import_cycles_no_private_imports_and_no_overgrown_modules():
    """Every import in unettui/ (module level, in a function, or for types only): no module imports another module's
    private name, no two modules import each other through any chain, nothing below the command line imports it
    (nor the TUI, but the CLI), and no module is over 600 lines unless its docstring says why."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "unettui"
    mods: dict[str, Path] = {}
    for f in root.rglob("*.py"):
        name = ".".join(f.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
        mods[name] = f

    def resolve(cur: str, level: int, module: str | None) -> str:
        pkg = cur.split(".") if mods[cur].name == "__init__.py" else cur.split(".")[:-1]
        return ".".join(pkg[: len(pkg) - (level - 1)] + (module.split(".") if module else []))

    edges: dict[str, set[str]] = {m: set() for m in mods}
    private, overgrown = [], []
    for m, f in mods.items():
        text = f.read_text()
        tree = ast.parse(text)
        if len(text.splitlines()) > 600 and "lines:" not in (ast.get_docstring(tree) or ""):
            overgrown.append((m, len(text.splitlines())))
        for node in ast.walk(tree):  # every import: module level, in a function, or for types only (TYPE_CHECKING)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("unettui"):
                        edges[m].add(alias.name)
                continue
            if not isinstance(node, ast.ImportFrom):
                continue
            target = resolve(m, node.level, node.module) if node.level else (node.module or "")
            for alias in node.names:
                full = f"{target}.{alias.name}"
                edges[m].add(full if full in mods else target)
                if alias.name.startswith("_") and not alias.name.startswith("__") and target.startswith("unettui"):
                    private.append(f"{m} imports {target}.{alias.name}")

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            cur = todo.pop()
            for nxt in edges.get(cur, ()):
                if nxt == goal:
                    return True
                if nxt not in seen and nxt in edges:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    cycles = sorted(m for m in mods if m in edges and any(reaches(n, m) for n in edges[m] if n != m and n in mods))
    # the layers: nothing below the command line imports it, and nothing but the TUI (and the CLI that opens it) the TUI
    upward = sorted(f"{m} imports {t}" for m, targets in edges.items() for t in targets
                    if (t.startswith("unettui.cli") and not m.startswith(("unettui.cli", "unettui.__main__")))
                    or (t.startswith("unettui.tui") and not m.startswith(("unettui.tui", "unettui.cli"))))
    assert not private, private
    assert not cycles, cycles
    assert not upward, upward
    assert not overgrown, overgrown
