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
            "print('LOADED', ','.join(m for m in ('torch', 'textual') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Usage" in out.stdout
    assert out.stdout.strip().endswith("LOADED"), out.stdout[-200:]
