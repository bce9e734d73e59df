"""How the `isthmus` command prints: rich tables that fit a terminal, whole values elsewhere.

On a terminal a table is fitted to its width, and long identifiers (addresses, transaction
hashes) are abbreviated so that a row stays readable. Anywhere else (a pipe, a file, a log,
a test runner) nothing is cut: rich would otherwise lay tables out for 80 columns and end
hashes, instruments and amounts with "…", and a script reading the output would get half a
hash. Commands that print tables also take `--json` for the same data as JSON.
"""

from __future__ import annotations

from rich.console import Console, ConsoleDimensions

# Columns when the output is not a terminal: wider than any row, so no cell is ever cut or
# wrapped (tables take the width of their content, not the console's).
UNCUT_WIDTH = 100_000


class Output(Console):
    """A rich console that never cuts a value when it does not write to a terminal. The
    check is made at each print, against the file it writes to then (the process's stdout,
    or what a test runner put in its place)."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self.is_terminal:
            return size
        return ConsoleDimensions(UNCUT_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


def abbreviated(console: Console, text: str, head: int, tail: int = 0) -> str:
    """`text` as its first `head` and last `tail` characters around "…" on a terminal; whole
    anywhere else."""
    if not console.is_terminal or len(text) <= head + tail + 1:
        return text
    return text[:head] + "…" + (text[-tail:] if tail else "")
