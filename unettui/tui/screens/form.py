"""Modal dialogs that edit the queue: an experiment's keys, a sweep's grid, and a yes/no confirmation.

The fields are read and checked by the CLI's own parsers (core.edit.parse_setting, parse_sweep_assignments), so
a value refused here is refused with the same words by `unettui add --set` / `unettui sweep --set`. The dialogs
only collect and check; the caller writes experiments.toml (through core.edit) in its dismiss callback, or in
``apply``: a function called on Save whose ValueError keeps the dialog open with the message shown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, Input, Label, Select, Static, TextArea

from ...core.define.config import (
    AMP_MODES,
    KEYS,
    LOSSES,
    OPTIMIZERS,
    SCHEDULERS,
    TIFF_PAGES,
    Config,
    ConfigError,
    build_config,
    key_to_field,
)
from ...core.define.edit import SWEEP_CONFIRM, check_id
from ...core.define.setvalues import format_value, parse_setting, parse_sweep_assignments, sweep_size

CHOICES = {"optimizer": OPTIMIZERS, "scheduler": SCHEDULERS, "loss": LOSSES, "amp": AMP_MODES, "tiff_pages": TIFF_PAGES}
GROUPS = {"dataset": "Data", "base_channels": "Model", "optimizer": "Optimisation",
          "augment.rotate": "Augmentation (training batches only)", "epochs": "Loop"}
WHERE = "form"
HINT = "ctrl+s save · esc cancel"

_DIALOG_CSS = """
    align: center middle;
    & > Vertical {
        width: 100%; max-width: 100; height: 100%; max-height: 46;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    .dialog-title { text-style: bold; width: 100%; }
    .dialog-buttons { height: 3; }
    .dialog-buttons Button { margin-left: 1; }
    .dialog-hint { width: 1fr; height: 3; content-align: left middle; color: $text-muted; }
    .dialog-message { color: $error; height: auto; }
"""


def _wid(key: str) -> str:
    """A widget id for a key (ids cannot hold dots)."""
    return key.replace(".", "-")


def _shown(value: Any) -> str:
    """A value as the user types it: strings bare, everything else as TOML."""
    return value if isinstance(value, str) else format_value(value)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


class SettingValidator(Validator):
    """Checks one field's text as `--set key=text` would: ConfigError's message is the failure."""

    def __init__(self, key: str):
        super().__init__()
        self.key = key

    def validate(self, value: str) -> ValidationResult:
        try:
            parse_setting(self.key, value, WHERE)
        except ConfigError as exc:
            return self.failure(exc.message)
        return self.success()


class IdValidator(Validator):
    """Checks that an id is filesystem-safe (uniqueness is checked when the file is written)."""

    def validate(self, value: str) -> ValidationResult:
        try:
            check_id(value.strip())
        except ConfigError as exc:
            return self.failure(exc.message)
        return self.success()


class _Form(ModalScreen[dict | None]):
    """Save (ctrl+s, the Save button) and cancel (escape, the Cancel button) for both forms."""

    BINDINGS: ClassVar = [Binding("ctrl+s", "save", "save"), Binding("escape", "cancel", "cancel")]


    def action_save(self) -> None:  # pragma: no cover - each form defines it
        raise NotImplementedError

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#save")
    def _save_pressed(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()


class ExperimentForm(_Form):
    """Add or edit one experiment: a row per canonical key, prefilled with the entry's own value, the default
    from [defaults] as placeholder; an empty field means "not set" (the default applies). ctrl+s saves once
    every field is valid and the keys fit together; escape cancels (None).

    Dismisses ``{"id": str | None, "values": {key: value or None}}`` where ``values`` holds only what differs
    from ``values`` given: keys typed or changed, with their parsed values, and keys cleared, as None.
    """

    DEFAULT_CSS = "ExperimentForm {" + _DIALOG_CSS + """
        .form-group { text-style: bold; color: $accent; margin-top: 1; }
        .form-row { height: 1; }
        .form-label { width: 20; }
        .form-row Input, .form-row Select { width: 1fr; }
        .field-error { color: $error; padding-left: 20; height: auto; display: none; }
        .field-error.-shown { display: block; }
        Select.-invalid { background-tint: $error 20%; }
        #form-fields { height: 1fr; }
    }
    """

    def __init__(self, title: str, values: dict[str, Any], exp_id: str | None, defaults: Config,
                 *, apply: Callable[[dict], Any] | None = None):
        super().__init__()
        self.form_title = title
        self.initial = dict(values)
        self.exp_id = exp_id
        self.defaults = defaults
        self.apply = apply
        self.errors: dict[str, str] = {}  # field ("id" or a key) -> why its text is refused

    # ---- layout ----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.form_title, classes="dialog-title", markup=False)
            with VerticalScroll(id="form-fields"):
                with Horizontal(classes="form-row"):
                    yield Label("id", classes="form-label")
                    yield Input(self.exp_id or "", placeholder="generated from the keys", id="field-id", compact=True,
                                validators=[IdValidator()], valid_empty=True)
                yield Static("", id="error-id", classes="field-error", markup=False)
                for key in KEYS:
                    if key in GROUPS:
                        yield Label(GROUPS[key], classes="form-group")
                    with Horizontal(classes="form-row"):
                        yield Label(key, classes="form-label")
                        yield self._field(key)
                    yield Static("", id=f"error-{_wid(key)}", classes="field-error", markup=False)
            yield Static("", id="form-message", classes="dialog-message", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Static(HINT, classes="dialog-hint")
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    def _field(self, key: str) -> Input | Select:
        default = _shown(getattr(self.defaults, key_to_field(key)))
        value = self.initial.get(key)
        if key in CHOICES:
            options = list(CHOICES[key])
            if value is not None and value not in options:  # a wrong value from the file: show it, marked invalid
                options.append(value)
            return Select([(str(o), o) for o in options], prompt=f"(default: {default})", id=f"field-{_wid(key)}",
                          value=Select.NULL if value is None else value, compact=True)
        return Input("" if value is None else _shown(value), placeholder=f"default: {default}", id=f"field-{_wid(key)}",
                     compact=True, validators=[SettingValidator(key)], valid_empty=True)

    def on_mount(self) -> None:
        for name in ("id", *KEYS):
            self._check(name)
        self.query_one("#field-id", Input).focus()

    # ---- validation as you type --------------------------------------------------------------
    def _widget(self, name: str) -> Input | Select:
        return self.query_one(f"#field-{_wid(name)}")

    def _check(self, name: str) -> None:
        widget = self._widget(name)
        if isinstance(widget, Input):
            result = widget.validate(widget.value)
            problem = None if result is None or result.is_valid else result.failure_descriptions[0]
        else:
            problem = None
            if widget.value is not Select.NULL:
                try:
                    parse_setting(name, str(widget.value), WHERE)
                except ConfigError as exc:
                    problem = exc.message
            widget.set_class(problem is not None, "-invalid")
        self._show(name, problem)

    def _show(self, name: str, problem: str | None) -> None:
        if problem:
            self.errors[name] = problem
        else:
            self.errors.pop(name, None)
        error = self.query_one(f"#error-{_wid(name)}", Static)
        error.update(problem or "")
        error.set_class(bool(problem), "-shown")
        if problem:
            error.scroll_visible()
        self.query_one("#save", Button).disabled = bool(self.errors)
        self.query_one("#form-message", Static).update("")

    @on(Input.Changed)
    @on(Select.Changed)
    def _changed(self, event: Input.Changed | Select.Changed) -> None:
        event.stop()
        name = (event.control.id or "").removeprefix("field-")
        name = next((k for k in ("id", *KEYS) if _wid(k) == name), None)
        if name is not None:
            self._check(name)

    # ---- the result --------------------------------------------------------------------------
    def changes(self) -> dict[str, Any]:
        """What differs from the prefilled values: parsed new values, None for cleared keys. Fields must be valid."""
        out: dict[str, Any] = {}
        for key in KEYS:
            widget = self._widget(key)
            if isinstance(widget, Select):
                text = "" if widget.value is Select.NULL else str(widget.value)
            else:
                text = widget.value.strip()
            if not text:
                if key in self.initial:
                    out[key] = None
                continue
            value = parse_setting(key, text, WHERE)
            if key not in self.initial or not _same(value, self.initial[key]):
                out[key] = value
        return out

    def _fail(self, message: str) -> None:
        self.query_one("#form-message", Static).update(message)

    def action_save(self) -> None:
        if self.errors:
            first = next(iter(self.errors))
            self._fail(f"{first}: {self.errors[first]} (fix the marked fields first)")
            self._widget(first).focus()
            return
        values = self.changes()
        merged = {**{k: v for k, v in self.initial.items() if k in KEYS}, **values}
        try:  # keys that only make sense together (image_size and depth, amp and device)
            build_config({k: v for k, v in merged.items() if v is not None}, WHERE, self.defaults)
        except ConfigError as exc:
            self._fail(f"{exc.key}: {exc.message}" if exc.key else exc.message)
            if exc.key in KEYS:
                self._widget(exc.key).focus()
            return
        result = {"id": self.query_one("#field-id", Input).value.strip() or None, "values": values}
        if self.apply is not None:
            try:
                self.apply(result)
            except ValueError as exc:  # EditError, ConfigError, QueueError: the file was not changed
                self._fail(str(exc))
                return
        self.dismiss(result)



SWEEP_HELP = ("One key=values per line; several values make the grid, one value is shared.\n"
              "e.g. optimizer=adam,sgd   lr=1e-4..1e-1:log4 (log-spaced)   dropout=0..0.5:6")


class SweepForm(_Form):
    """Add a sweep: an id and ``key=a,b,c`` lines (ranges allowed), checked as you type with the expanded count.

    Dismisses ``{"id": str | None, "grid": {key: list or shared value}}`` (add_sweep's arguments)."""

    DEFAULT_CSS = "SweepForm {" + _DIALOG_CSS + """
        & > Vertical { max-height: 24; }
        .form-row { height: 1; margin-bottom: 1; }
        .form-label { width: 4; }
        .form-row Input { width: 1fr; }
        #sweep-help { color: $text-muted; height: auto; }
        #sweep-lines { height: 1fr; min-height: 4; }
        #sweep-count { height: auto; }
    }
    """

    def __init__(self, title: str = "Add a sweep", sweep_id: str | None = None, text: str = "",
                 *, apply: Callable[[dict], Any] | None = None):
        super().__init__()
        self.form_title = title
        self.sweep_id = sweep_id
        self.text = text
        self.apply = apply
        self.grid: dict[str, Any] | None = None
        self.problem: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.form_title, classes="dialog-title", markup=False)
            with Horizontal(classes="form-row"):
                yield Label("id", classes="form-label")
                yield Input(self.sweep_id or "", placeholder="generated: sweep-<keys>", id="sweep-id", compact=True,
                            validators=[IdValidator()], valid_empty=True)
            yield Static(SWEEP_HELP, id="sweep-help", markup=False)
            yield TextArea(self.text, id="sweep-lines", soft_wrap=False, show_line_numbers=True)
            yield Static("", id="sweep-count", markup=False)
            yield Static("", id="sweep-error", classes="dialog-message", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Static(HINT, classes="dialog-hint")
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self._update()
        self.query_one("#sweep-lines", TextArea).focus()

    @staticmethod
    def parse(text: str) -> dict[str, Any]:
        """The grid of ``key=values`` lines (blank lines and ``#`` comments skipped); ConfigError names the line."""
        grid: dict[str, Any] = {}
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                ((key, value),) = parse_sweep_assignments([line]).items()
            except ConfigError as exc:
                raise ConfigError(f"line {n}", exc.key, exc.message) from None
            if key in grid:
                raise ConfigError(f"line {n}", key, "given twice; list every value on one line: key=a,b,c")
            grid[key] = value
        if not any(isinstance(v, list) for v in grid.values()):
            raise ConfigError("sweep", None, "needs at least one key with several values, e.g. lr=1e-4,1e-3")
        return grid

    def _update(self) -> None:
        try:
            self.grid, self.problem = self.parse(self.query_one("#sweep-lines", TextArea).text), None
        except ConfigError as exc:
            self.grid, self.problem = None, str(exc)
        id_input = self.query_one("#sweep-id", Input)
        result = id_input.validate(id_input.value)
        id_problem = None if result is None or result.is_valid else f"id: {result.failure_descriptions[0]}"
        count = self.query_one("#sweep-count", Static)
        if self.grid is None:
            count.update("")
        else:
            size = sweep_size(self.grid)
            lines = [f"{size} experiment{'' if size == 1 else 's'}"
                     + (f" (more than {SWEEP_CONFIRM})" if size > SWEEP_CONFIRM else "")]
            lines += [f"  {k} × {len(v)}: {', '.join(_shown(x) for x in v)}" if isinstance(v, list)
                      else f"  {k} = {_shown(v)} (shared)" for k, v in self.grid.items()]
            count.update("\n".join(lines))
        self.query_one("#sweep-error", Static).update(id_problem or self.problem or "")
        self.query_one("#save", Button).disabled = self.grid is None or id_problem is not None

    @on(TextArea.Changed)
    @on(Input.Changed)
    def _changed(self, event: TextArea.Changed | Input.Changed) -> None:
        event.stop()
        self._update()

    @property
    def count(self) -> int | None:
        """How many experiments the lines expand to (None while they do not parse)."""
        return None if self.grid is None else sweep_size(self.grid)

    def action_save(self) -> None:
        self._update()
        if self.query_one("#save", Button).disabled:
            return
        result = {"id": self.query_one("#sweep-id", Input).value.strip() or None, "grid": self.grid}
        if self.apply is not None:
            try:
                self.apply(result)
            except ValueError as exc:
                self.query_one("#sweep-error", Static).update(str(exc))
                return
        self.dismiss(result)



class ConfirmDialog(ModalScreen[bool]):
    """A yes/no question (delete, quit): y or the Yes button -> True; n, escape or No -> False. No has the focus."""

    DEFAULT_CSS = "ConfirmDialog {" + _DIALOG_CSS + """
        & > Vertical { max-width: 70; height: auto; max-height: 16; }
        #confirm-message { height: auto; margin: 1 0; }
    }
    """
    BINDINGS: ClassVar = [Binding("y", "answer(True)", "yes"), Binding("n", "answer(False)", "no"),
                Binding("escape", "answer(False)", "no")]

    def __init__(self, message: str, yes: str = "Yes", no: str = "No"):
        super().__init__()
        self.message = message
        self.yes, self.no = yes, no

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.message, id="confirm-message", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Static("", classes="dialog-hint")
                yield Button(f"{self.yes} (y)", variant="error", id="yes")
                yield Button(f"{self.no} (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")
