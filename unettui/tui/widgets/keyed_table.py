"""KeyedTable: a DataTable whose rows are keyed (a run id) and brought up to date from the rows wanted, in place: changed
cells updated, new rows added in batches of up to CHUNK per frame, gone rows removed, the order fixed by one sort — so
a table of 10,000 runs never holds the UI thread for long, and a poll that changed one run touches one row."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import zip_longest
from typing import Any

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets import DataTable
from textual.widgets.data_table import Row, RowKey

Cells = tuple[Text, ...]
# what KeyedTable._add_rows uses of DataTable's internals (written against Textual 8.2; without them: add_row)
_INTERNALS = ("_row_locations", "_data", "rows", "_new_rows", "_require_update_dimensions", "_update_count",
              "_offset_cache", "_highlight_cursor", "check_idle")
# ... and KeyedTable._render_cell (without them, or where a cell drawn both ways differs: DataTable's own)
_CELL_INTERNALS = ("_cell_render_cache", "_row_locations", "_column_locations", "_data", "rows", "_pseudo_class_state",
                   "_show_hover_cursor", "_get_styles_to_render_cell", "_header_row_key", "header_height")
_NULL = Style.null()
_AWAY = Coordinate(-2, -2)  # no row's: where the cursor (or the mouse) is for a row it is not on


class KeyedTable(DataTable):
    """``sync(rows)`` makes the table show ``rows`` (``(key, cells)`` in order). The cells of ``key_column`` must read
    as the row's key (they are how a sort finds a row). The cursor stays on its row's key."""

    VERIFY = 16  # cells drawn both ways (the fast path and DataTable's) before the fast path is trusted
    CHUNK = 5000  # rows added per frame at most (_add_rows costs ~5 µs a row: a slice of the first read in one frame)
    SLOW_CHUNK = 500  # ... where _add_rows falls back to DataTable.add_row (~50-100 µs a row)
    REBUILD = 64  # removing more rows than this clears the table instead (DataTable.remove_row is O(rows))

    def __init__(self, *args: Any, key_column: str = "id", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_column = key_column
        self._want: list[str] = []  # the keys wanted, in order
        self._want_cells: dict[str, Cells] = {}
        self._drawn: dict[str, Cells] = {}  # the cells each row of the table shows
        self._pending: list[str] = []  # wanted keys not added yet
        self._filling = False
        self._keep: str | None = None  # the key the cursor is to stay on while rows are added
        self._shown: list[str] = []  # the keys of the table's rows in the table's order
        self._more = False  # (sync's) more rows are on their way
        self._size_stale = False  # rows were added without the table's size following (sync's ``more``)
        self._later_widths: list[int] | None = None  # ... and their columns' widths, not applied yet
        self._fast_cells = all(hasattr(self, name) for name in _CELL_INTERNALS)  # _render_cell's own way
        self._verify = self.VERIFY

    # ---- what the table shows --------------------------------------------------------
    @property
    def keys(self) -> list[str]:
        """The keys wanted, in order (some may still be on their way into the table)."""
        return list(self._want)

    @property
    def complete(self) -> bool:
        """Every wanted row is in the table, in order."""
        return not self._pending and not self._filling

    def cursor_key(self) -> str | None:
        if not self.row_count or not (0 <= self.cursor_row < self.row_count):
            return None
        return self.coordinate_to_cell_key((self.cursor_row, 0)).row_key.value

    def reset_columns(self, columns: Sequence[tuple[str, str | Text]], widths: Sequence[int | None] | None = None) -> None:
        """New columns (key, label): every row is added again on the next ``sync``."""
        self.clear(columns=True)
        self._drawn, self._pending, self._filling = {}, [], False
        for i, (key, label) in enumerate(columns):
            self.add_column(label, key=key, width=widths[i] if widths else None)

    def sync(self, rows: Sequence[tuple[str, Cells]], keep: str | None = None,
             changed: set[str] | None = None, more: bool = False) -> None:
        """Show ``rows`` in this order; ``keep``: the key the cursor goes to (default: the one it is on); ``changed``:
        the only keys whose cells may differ from what their rows show (None: any); ``more``: more rows are on their
        way (a large project read in slices): rows added below the screen leave the table's size (its scrollbar) as it
        is until a sync without ``more`` (each change of size lays the whole screen out again)."""
        self._more = more
        keep = keep if keep is not None else (self._keep if self._filling else self.cursor_key())
        self._want = [k for k, _ in rows]
        self._want_cells = dict(rows)
        gone = [k for k in self._drawn if k not in self._want_cells]
        if len(gone) > self.REBUILD:
            self.clear()
            self._drawn = {}
        else:
            for key in gone:
                self.remove_row(key)
                del self._drawn[key]
        columns = [c.key.value for c in self.ordered_columns]
        if changed is None:
            for key, cells in rows:
                self._redraw(key, cells, columns)
        else:
            for key in changed & self._drawn.keys():
                if key in self._want_cells:
                    self._redraw(key, self._want_cells[key], columns)
        drawn = self._drawn
        self._pending = [k for k in self._want if k not in drawn]
        self._keep = keep
        self._reserve_scrollbar()
        self._fill()
        if not more:
            self.sync_size()

    def _reserve_scrollbar(self) -> None:
        """The scrollbar's columns are kept once the rows wanted overflow the table, before they are added: a table as
        wide as its columns (``width: auto``) is laid out once, not a second time when its scrollbar appears (each
        layout draws the whole screen again: 50-70 ms while a large project is read)."""
        height = self.size.height
        if height:
            stable = len(self._want) + (self.header_height if self.show_header else 0) > height
            gutter = "stable" if stable else "auto"
            if self.styles.scrollbar_gutter != gutter:
                self.styles.scrollbar_gutter = gutter

    def update_rows(self, rows: Sequence[tuple[str, Cells]]) -> None:
        """New cells for rows already wanted (others are ignored), in place; the order stays."""
        columns = [c.key.value for c in self.ordered_columns]
        for key, cells in rows:
            if key not in self._want_cells:
                continue
            self._want_cells[key] = cells
            self._redraw(key, cells, columns)

    def _redraw(self, key: str, cells: Cells, columns: list[str]) -> None:
        """Update the cells of row ``key`` that differ from what it shows (rows not added yet: nothing)."""
        was = self._drawn.get(key)
        if was is None or was == cells:
            return
        for column, new, old in zip(columns, cells, was):
            if new != old:
                self.update_cell(key, column, new, update_width=True)
        self._drawn[key] = cells

    def _fill(self) -> None:
        """Add the next CHUNK pending rows; again after the next refresh while rows remain; then order and cursor."""
        chunk = self.CHUNK if all(hasattr(self, name) for name in _INTERNALS) else self.SLOW_CHUNK
        batch, self._pending = self._pending[:chunk], self._pending[chunk:]
        self._add_rows([(key, self._want_cells[key]) for key in batch])
        if self._pending:
            if not self._filling:
                self._filling = True
                self.call_after_refresh(self._fill_more)
            if self._keep in self._drawn:
                self._order_and_cursor(partial=True)
            return
        self._order_and_cursor()

    def _fill_more(self) -> None:
        self._filling = False
        if self._pending:
            self._fill()

    def _order_and_cursor(self, partial: bool = False) -> None:
        if not partial and self._shown != self._want:
            rank = {k: i for i, k in enumerate(self._want)}
            self.sort(self.key_column, key=lambda cell: rank.get(_plain(cell), len(rank)))
            self._shown = [r.key.value for r in self.ordered_rows]
        keep = self._keep
        if keep is not None and keep in self._drawn:
            row = self.get_row_index(keep)
            if row != self.cursor_row:
                self.move_cursor(row=row, animate=False)

    def clear(self, columns: bool = False):  # type: ignore[override]
        self._shown = []
        self._later_widths = None  # (the widths of rows no longer there)
        return super().clear(columns)

    def remove_row(self, row_key):  # type: ignore[override]
        key = row_key.value if hasattr(row_key, "value") else row_key
        if key in self._shown:
            self._shown.remove(key)
        return super().remove_row(row_key)

    def _add_rows(self, batch: list[tuple[str, Cells]]) -> None:
        """Add rows at the bottom: what DataTable.add_row does for each, with its per-row work done once per batch (it
        sets the cursor reactive and asks for idle processing for every row: most of the cost of 10,000 rows) and
        one-line Text cells measured here. Falls back to add_row on a Textual whose internals differ."""
        if not batch:
            return
        self._shown.extend(key for key, _ in batch)
        if not all(hasattr(self, name) for name in _INTERNALS):
            for key, cells in batch:
                self.add_row(*cells, key=key)
                self._drawn[key] = cells
            return
        locations, data, rows, new = self._row_locations, self._data, self.rows, self._new_rows
        columns = self.ordered_columns
        column_keys = [c.key for c in columns]
        first = self.row_count == 0
        index = self.row_count
        widths = [c.content_width for c in columns]
        measured: set[tuple[int, int]] = set()  # (column, id of a cell): a cell shared by many rows is measured once
        for key, cells in batch:
            row_key = RowKey(key)  # (a key not drawn yet: sync adds only those)
            locations[row_key] = index
            index += 1
            data[row_key] = (dict(zip(column_keys, cells)) if len(cells) == len(column_keys)
                             else {c.key: cell for c, cell in zip_longest(columns, cells)})
            rows[row_key] = Row(row_key, 1)
            for i, cell in enumerate(cells):
                if (i, id(cell)) in measured:
                    continue
                plain = cell.plain if type(cell) is Text else "\n"
                if "\n" in plain:  # not a one-line Text: measured Textual's way when idle
                    new.add(row_key)
                    break
                width = len(plain) if plain.isascii() else cell.cell_len
                if width > widths[i]:
                    widths[i] = width
                measured.add((i, id(cell)))
            self._drawn[key] = cells
        self.cursor_coordinate = self.cursor_coordinate
        if first and self.show_cursor and self.cursor_type != "none":
            self._highlight_cursor()
        below = self.row_count - len(batch) >= self.scroll_offset.y + self.size.height
        if below and self._more:
            # more rows are on their way (sync's ``more``) and these are all below the screen: their widths and the
            # table's size wait for the last of them (_size_now), where the screen is laid out and drawn once
            self._later_widths = [max(w, was) for w, was in zip(widths, self._later_widths or widths)]
            self._size_stale = True
            self._offset_cache.clear()
            return
        wider = self._set_widths(widths)
        if below and not wider:
            # every new row is below the rows on screen, in columns as wide as before: the lines drawn stay right,
            # only the map of lines to rows grows
            self._offset_cache.clear()
        else:
            self._update_count += 1  # what is on screen changes: every cached line is drawn again
        self._size_now()

    def _set_widths(self, widths: list[int]) -> bool:
        """Columns as wide as ``widths`` where those are wider (the widest cell of each); True when one widened."""
        wider = False
        for c, w in zip(self.ordered_columns, widths):
            if w > c.content_width:
                c.content_width, wider = w, True
        return wider

    # ---- drawing a cell ---------------------------------------------------------------
    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int, cursor: bool = False,
                     hover: bool = False):  # type: ignore[override]
        """DataTable's cell (a header's too), drawn without Rich's layout machinery where the cell is one line of
        plain-styled Text that fits (every cell of these tables): 5-10 µs instead of ~100 µs (a screen of the results
        table holds hundreds of cells, and DataTable draws every one again whenever its rows or widths change). The
        first VERIFY cells are drawn both ways; a difference turns the fast way off for good."""
        if not self._fast_cells or column_index < 0 or row_index < -1:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        header = row_index == -1
        row_key = self._header_row_key if header else self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        key = (row_key, column_key, base_style, cursor, hover, self._show_hover_cursor, self._update_count,
               self._pseudo_class_state)
        cache = self._cell_render_cache
        lines = cache.get(key)
        if lines is not None:
            return lines
        if header:
            column = self.columns.get(column_key)
            cell, one_line = (column.label if column is not None else None), self.header_height == 1
        else:
            row, meta = self._data.get(row_key), self.rows.get(row_key)
            cell = row.get(column_key) if row is not None else None
            one_line = meta is not None and meta.height == 1 and not meta.auto_height
        if type(cell) is not Text or not one_line:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        fixed = not header and (row_index < self.fixed_rows or column_index < self.fixed_columns)
        component, post = self._get_styles_to_render_cell(header, False, fixed, hover, cursor, self.show_cursor,
                                                          self._show_hover_cursor,
                                                          self.cursor_foreground_priority == "css",
                                                          self.cursor_background_priority == "css")
        pre = base_style + Style.from_meta({"row": row_index, "column": column_index}) + component
        line = one_line_cell(cell, width, self.cell_padding, pre, post, self.app.console.get_style)
        if line is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        lines = [line]
        if self._verify > 0:
            self._verify -= 1
            theirs = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)  # (cached)
            if theirs != lines:
                self._fast_cells = False
                return theirs
        cache[key] = lines
        return lines

    def _render_line_in_row(self, row_key, line_no, base_style, cursor_location,  # type: ignore[override]
                            hover_location):
        """DataTable's row, whose cache is keyed by where the cursor and the mouse are: with a row cursor, a row is
        drawn alike wherever they are unless on it, so every row but the two the cursor moved between comes from the
        cache (each key in a table of ten columns drew every row on screen again)."""
        if self.cursor_type == "row":
            row = -1 if row_key is self._header_row_key else self._row_locations.get(row_key)
            if cursor_location.row != row:
                cursor_location = _AWAY
            if hover_location.row != row:
                hover_location = _AWAY
        return super()._render_line_in_row(row_key, line_no, base_style, cursor_location, hover_location)

    def sync_size(self) -> None:
        """The table's size follows its rows again, if a sync with ``more`` left it behind."""
        if self._size_stale:
            self._size_now()

    def _size_now(self) -> None:
        """The table's virtual size from its rows, when idle."""
        self._size_stale = False
        if self._later_widths is not None:
            widths, self._later_widths = self._later_widths, None
            if self._set_widths(widths):
                self._update_count += 1
        self._require_update_dimensions = True
        self.check_idle()


def _plain(cell: Any) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


def one_line_cell(cell: Text, width: int, padding: int, pre: Style, post: Style,
                  get_style: Callable[[str], Style]) -> list[Segment] | None:
    """The segments Rich draws for ``cell`` in a DataTable cell ``width`` wide (``padding`` each side) of one line,
    styled ``pre`` under and ``post`` over (what DataTable renders as Styled(Padding(cell, (0, padding)), pre, post)):
    for a Text without spans, one line, no tab, that fits, justified by default, left, right or centre; None for any
    other cell (DataTable's own rendering draws it). ``get_style``: the console's (a style named by a string)."""
    plain = cell.plain
    inner = width - 2 * padding
    if cell._spans or not plain or inner < 0 or "\n" in plain or "\t" in plain:
        return None
    size = len(plain) if plain.isascii() else cell_len(plain)
    justify = cell.justify or "default"
    if size > inner or justify not in ("default", "left", "right", "center") \
            or (justify in ("right", "center") and plain[-1].isspace()):
        return None
    style = cell.style
    if isinstance(style, str) and style:
        try:
            style = get_style(style)
        except Exception:  # noqa: BLE001 - a style Rich cannot parse: DataTable's own drawing decides what it shows
            return None
    style = style or None
    spare = inner - size
    if justify == "left":
        plain, spare = plain + " " * spare, 0
    elif justify == "right":
        plain, spare = " " * spare + plain, 0
    elif justify == "center":
        plain, spare = " " * (spare // 2) + plain + " " * (spare - spare // 2), 0
    side = Segment(" " * padding, _NULL) if padding else None
    line = [side] if side else []
    line.append(Segment(plain, style + _NULL if style else None))
    if spare:
        line.append(Segment(" " * spare, _NULL))
    if side:
        line.append(side)
    return list(Segment.apply_style(line, style=pre, post_style=post))
