"""KeyedTable draws one-line Text cells its own way (~10x faster than DataTable's Rich layout): the very segments
DataTable draws, for every kind of cell the tables hold, under every style a row can have."""

from __future__ import annotations

import asyncio
import itertools

from rich.style import Style
from rich.text import Text
from textual.app import App
from textual.widgets import DataTable

from unettui.tui.widgets.keyed_table import KeyedTable, one_line_cell

CELLS = [Text("done", style="green"), Text("0.5000", justify="right"), Text("r00001"), Text("x", style="bold red",
         justify="center"), Text("ab", style="dim", justify="left"), Text("ü日本", style="italic"),
         Text("-", style="dim", justify="right"), Text(" ", justify="center"), Text("é", justify="left"),
         Text("y", style=Style(color="red", bgcolor="blue")), Text("", justify="right"), Text("", style="dim"),
         Text("", justify="center"), Text("q", style=""), Text("running (not in queue)", style="bold yellow"),
         # drawn by DataTable (the fast way says None): too wide, spans, several lines, a tab, trailing space
         Text("a very long cell text"), Text.assemble(("ab", "red"), ("cd", "blue")), Text("1\n2"), Text("a\tb"),
         Text("abc ", justify="right")]
WIDTHS = (3, 6, 10, 26)


def test_a_cell_drawn_the_fast_way_is_the_one_datatable_draws():
    """Every cell (header, fixed column, the others) under every style a cell can have (cursor, hover, zebra):
    KeyedTable._render_cell gives what DataTable._render_cell gives, the fast way where one_line_cell can."""
    fast: list[int] = []

    class Host(App):
        def compose(self):
            yield KeyedTable(cursor_type="row", zebra_stripes=True, fixed_columns=1, key_column="c0")

    async def main():
        app = Host()
        async with app.run_test(size=(120, 40)) as pilot:
            table = app.query_one(KeyedTable)
            table.reset_columns([(f"c{i}", CELLS[i]) for i in range(len(WIDTHS))], WIDTHS)
            table.sync([(f"k{n}", (Text(f"k{n}"), *[cell] * (len(WIDTHS) - 1))) for n, cell in enumerate(CELLS)])
            await pilot.pause()
            import unettui.tui.widgets.keyed_table as kt

            real = kt.one_line_cell
            kt.one_line_cell = lambda *a: (lambda got: fast.append(got is not None) or got)(real(*a))
            compared = 0
            try:
                for row, column in itertools.product(range(-1, len(CELLS)), range(len(WIDTHS))):
                    for cursor, hover, base in itertools.product((False, True), (False, True),
                                                                 (Style(bgcolor="#202020"), Style.null(),
                                                                  Style(color="white", bgcolor="black", bold=True))):
                        width = table.ordered_columns[column].get_render_width(table)
                        table._cell_render_cache.clear()
                        theirs = DataTable._render_cell(table, row, column, base, width, cursor, hover)
                        table._cell_render_cache.clear()
                        table._verify = 0
                        assert table._render_cell(row, column, base, width, cursor, hover) == theirs, \
                            (row, column, cursor, hover, base)
                        compared += 1
            finally:
                kt.one_line_cell = real
            return compared, table._fast_cells

    compared, still = asyncio.run(main())
    assert compared == (len(CELLS) + 1) * len(WIDTHS) * 12 and still
    assert sum(fast) >= 0.6 * compared, sum(fast)  # most of them the fast way (a cell wider than its column is not)
    assert all(one_line_cell(c, 40, 1, Style.null(), Style.null(), Style.parse) is None for c in CELLS[-4:])
    assert one_line_cell(CELLS[-5], 12, 1, Style.null(), Style.null(), Style.parse) is None  # (too wide)
    assert one_line_cell(Text("x", style="no such style"), 12, 1, Style.null(), Style.null(), Style.parse) is None


class RunsTable(App):
    """A KeyedTable of 100 runs (id, state, best), as the queue's."""

    def compose(self):
        yield KeyedTable(cursor_type="row", zebra_stripes=True, key_column="id")

    def on_mount(self):
        table = self.query_one(KeyedTable)
        table.reset_columns([("id", "id"), ("state", "state"), ("best", "best")])
        table.sync([(f"r{i:03d}", (Text(f"r{i:03d}"), Text("done", style="green"),
                                   Text(f"{i / 100:.4f}", justify="right"))) for i in range(100)])


def test_a_keyed_table_keeps_drawing_the_fast_way_after_checking_its_first_cells():
    async def main():
        app = RunsTable()
        async with app.run_test(size=(80, 20)) as pilot:
            table = app.query_one(KeyedTable)
            await pilot.pause()
            checked = table._fast_cells, table._verify
            slow = []
            real = DataTable._render_cell
            DataTable._render_cell = lambda *a, **k: slow.append(a[1:3]) or real(*a, **k)
            try:
                await pilot.press("pagedown")
                await pilot.pause()
            finally:
                DataTable._render_cell = real
            return checked, len(slow), table.cursor_row

    (fast, left), slow, row = asyncio.run(main())
    assert fast and left == 0  # the first VERIFY cells were drawn both ways, alike
    assert row > 10 and slow == 0  # a page of new rows (and the header drawn again): every cell the fast way


def test_moving_a_row_cursor_draws_only_the_two_rows_it_moved_between():
    async def main():
        app = RunsTable()
        async with app.run_test(size=(80, 20)) as pilot:
            table = app.query_one(KeyedTable)
            await pilot.pause()
            table.move_cursor(row=3)  # (a key moving it, as the next one: the mouse's cursor hidden)
            table.refresh()
            table.render_lines(table.region.reset_offset)
            drawn: list[int] = []
            real = KeyedTable._render_cell
            KeyedTable._render_cell = lambda self, row, *a, **k: drawn.append(row) or real(self, row, *a, **k)
            try:
                table.move_cursor(row=4)
                table.refresh()  # (the whole table drawn again: the Results tab's header follows the cursor's row)
                lines = table.render_lines(table.region.reset_offset)
            finally:
                KeyedTable._render_cell = real
            return sorted(set(drawn)), len(lines)

    rows, lines = asyncio.run(main())
    assert lines > 10 and rows == [3, 4]  # (every other row on screen from the rows' cache)


def test_the_datatable_internals_keyed_table_uses_are_there():
    """KeyedTable uses about 15 of DataTable's private names (written against Textual 8.2; pyproject bounds textual
    below 9). At run time it falls back to DataTable's own (slower) ways where they are missing; this test fails
    instead, naming what changed, so that a new Textual is adopted on purpose, not by a silent slowdown."""
    import inspect

    import textual

    from unettui.tui.widgets import keyed_table as kt

    major = int(textual.__version__.split(".")[0])
    assert major == 8, f"textual {textual.__version__}: KeyedTable was written against Textual 8 (pyproject: <9)"

    async def main():
        app = RunsTable()
        async with app.run_test(size=(80, 20)) as pilot:
            await pilot.pause()
            table = app.query_one(KeyedTable)
            missing = [n for n in (*kt._INTERNALS, *kt._CELL_INTERNALS) if not hasattr(table, n)]
            return missing, table._fast_cells, table.row_count

    missing, fast, rows = asyncio.run(main())
    assert not missing, f"textual {textual.__version__} lacks DataTable internals KeyedTable uses: {missing}"
    assert fast and rows == 100
    want = {"_render_cell": ["self", "row_index", "column_index", "base_style", "width", "cursor", "hover"],
            "_render_line_in_row": ["self", "row_key", "line_no", "base_style", "cursor_location", "hover_location"],
            "_get_styles_to_render_cell": ["self", "is_header_cell", "is_row_label_cell", "is_fixed_style_cell",
                                           "hover", "cursor", "show_cursor", "show_hover_cursor",
                                           "has_css_foreground_priority", "has_css_background_priority"]}
    for name, params in want.items():
        got = list(inspect.signature(getattr(DataTable, name)).parameters)
        assert got == params, f"textual {textual.__version__}: DataTable.{name}{tuple(got)} changed"
