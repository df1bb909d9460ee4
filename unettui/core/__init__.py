"""The unettui core: config, data, model, training, run store. Runs without any UI (no textual, typer or rich)."""
