"""The queue's dialogs: the experiment form (validation as you type, with the CLI's words), the sweep form, confirm."""

import asyncio

from textual.app import App
from textual.widgets import Button, Input, Select, Static, TextArea

from unettui.core.define.config import DEFAULTS
from unettui.tui.screens.form import ConfirmDialog, ExperimentForm, SweepForm

DEFAULTS_HERE = DEFAULTS.replace(optimizer="sgd", epochs=7)


class Host(App):
    """An empty app that pushes one dialog and records what it was dismissed with."""

    def __init__(self, screen):
        super().__init__()
        self.dialog = screen
        self.results = []

    def on_mount(self) -> None:
        self.push_screen(self.dialog, self.results.append)


def run(screen, steps, size=(100, 40)):
    async def main():
        app = Host(screen)
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await steps(pilot, screen)
            await pilot.pause()
        return app.results

    return asyncio.run(main())


def error_text(screen, key):
    return str(screen.query_one(f"#error-{key}", Static).render())


def test_experiment_form_validates_as_you_type_and_saves_the_changes():
    async def steps(pilot, form):
        lr = form.query_one("#field-lr", Input)
        assert lr.value == "1e-4" and form.query_one("#field-epochs", Input).placeholder == "default: 7"
        assert str(form.query_one("#field-optimizer", Select).prompt) == "(default: sgd)"
        lr.focus()
        lr.value = ""
        await pilot.press(*"fast")
        await pilot.pause()
        assert "must be a number, got 'fast'" in error_text(form, "lr")  # the CLI's words: --set lr=fast
        assert lr.has_class("-invalid") and form.query_one("#save", Button).disabled
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert pilot.app.screen is form  # not saved while a field is invalid
        lr.value = "3e-4"
        await pilot.pause()
        assert error_text(form, "lr") == "" and not lr.has_class("-invalid")
        assert not form.query_one("#save", Button).disabled
        form.query_one("#field-epochs", Input).value = "5"
        form.query_one("#field-dropout", Input).value = ""  # cleared: back to [defaults]
        form.query_one("#field-optimizer", Select).value = "adamw"
        form.query_one("#field-augment-histeq", Input).value = "true"
        form.query_one("#field-id", Input).value = "mine"
        await pilot.pause()
        await pilot.press("ctrl+s")

    form = ExperimentForm("Edit a", {"lr": 1e-4, "dropout": 0.1, "seed": 3}, "a", DEFAULTS_HERE)
    assert run(form, steps) == [{"id": "mine", "values": {
        "optimizer": "adamw", "lr": 3e-4, "dropout": None, "augment.histeq": True, "epochs": 5}}]


def test_experiment_form_cross_key_check_and_escape():
    async def steps(pilot, form):
        size = form.query_one("#field-image_size", Input)
        size.value = "100"
        await pilot.pause()
        assert error_text(form, "image_size") == ""  # valid alone ...
        await pilot.press("ctrl+s")
        await pilot.pause()
        message = str(form.query_one("#form-message", Static).render())
        assert "image_size: 100 is not divisible by 2**4 = 16 (depth 4)" in message  # ... not with depth 4
        assert pilot.app.screen is form
        form.query_one("#field-id", Input).value = "a b"
        await pilot.pause()
        assert "not filesystem-safe" in error_text(form, "id") and form.query_one("#save", Button).disabled
        await pilot.press("escape")

    assert run(ExperimentForm("Add", {}, None, DEFAULTS), steps) == [None]


def test_experiment_form_fits_80x24_and_shows_a_bad_value_from_the_file():
    async def steps(pilot, form):
        assert "unknown value 'adamm'" in error_text(form, "optimizer")
        assert form.query_one("#save", Button).disabled
        assert form.query_one("#save", Button).region.bottom <= 24
        form.query_one("#field-optimizer", Select).clear()  # not set: the default applies
        await pilot.pause()
        assert not form.query_one("#save", Button).disabled
        await pilot.click("#save")

    form = ExperimentForm("Edit x", {"optimizer": "adamm"}, "x", DEFAULTS)
    assert run(form, steps, size=(80, 24)) == [{"id": "x", "values": {"optimizer": None}}]


def test_experiment_form_apply_refusal_keeps_the_form_open():
    calls = []

    def apply(result):
        calls.append(result)
        if len(calls) == 1:
            raise ValueError("id 'a' is already used by [[experiment]] 'a'; choose another id")

    async def steps(pilot, form):
        form.query_one("#field-id", Input).value = "a"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert pilot.app.screen is form
        assert "[[experiment]] 'a'" in str(form.query_one("#form-message", Static).render())
        form.query_one("#field-id", Input).value = "b"
        await pilot.press("ctrl+s")

    assert run(ExperimentForm("Add", {}, None, DEFAULTS, apply=apply), steps) == [{"id": "b", "values": {}}]
    assert len(calls) == 2


def test_sweep_form_counts_and_checks_lines():
    async def steps(pilot, form):
        lines = form.query_one("#sweep-lines", TextArea)
        lines.text = "lr=1e-4..1e-1:log4\noptimizer=adam,sgd\n"
        await pilot.pause()
        assert form.count == 8 and "8 experiments" in str(form.query_one("#sweep-count", Static).render())
        lines.text = "lr=1e-4..1e-1:log4\noptimizer=adam,sgdd"
        await pilot.pause()
        assert form.count is None and form.query_one("#save", Button).disabled
        assert "line 2: optimizer: unknown value 'sgdd'" in str(form.query_one("#sweep-error", Static).render())
        lines.text = "lr=1e-4..1e-1:log4\noptimizer=adam,sgd\n# a note\nepochs=5"
        form.query_one("#sweep-id", Input).value = "opt"
        await pilot.pause()
        await pilot.press("ctrl+s")

    result = run(SweepForm(), steps)
    assert result == [{"id": "opt", "grid": {"lr": [1e-4, 1e-3, 1e-2, 1e-1], "optimizer": ["adam", "sgd"], "epochs": 5}}]


def test_sweep_form_needs_a_list_and_escape_cancels():
    async def steps(pilot, form):
        assert form.query_one("#save", Button).disabled  # nothing typed yet
        await pilot.press(*"lr=1e-3")
        await pilot.pause()
        assert "at least one key with several values" in str(form.query_one("#sweep-error", Static).render())
        await pilot.press(*",1e-2")
        await pilot.pause()
        assert form.count == 2 and not form.query_one("#save", Button).disabled
        await pilot.press("escape")

    assert run(SweepForm(), steps) == [None]


def test_confirm_dialog_keys():
    def press(key):
        async def steps(pilot, dialog):
            assert "Remove a?" in str(dialog.query_one("#confirm-message", Static).render())
            await pilot.press(key)
        return steps

    for key, answer in [("y", True), ("n", False), ("escape", False), ("enter", False)]:  # enter: No has the focus
        assert run(ConfirmDialog("Remove a? [[experiment]] stays in runs/"), press(key)) == [answer]
