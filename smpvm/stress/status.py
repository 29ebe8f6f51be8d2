"""The one-second status line of a run.

On a terminal it is one line refreshed in place, fitted to the terminal's
width (rich measures it, again at every refresh): fields are ranked, and
the least telling go first, so the line never wraps.  Elsewhere (a pipe, a
file, CI) it is a plain line a second, fitted to $COLUMNS or 80.  Messages
(an indefinite wait, a stall) go on lines of their own above it.
"""
import sys

from smpvm.layout import lib

SEP = "  "


def fit(fields, width):
    """fields: [(text, rank)] in display order, rank 0 the most telling.
    The line of the best-ranked fields whose total fits width, in display
    order."""
    chosen, used = set(), -len(SEP)
    for i, (text, _) in sorted(enumerate(fields), key=lambda x: x[1][1]):
        if used + len(SEP) + len(text) > width:
            break
        chosen.add(i)
        used += len(SEP) + len(text)
    return SEP.join(text for i, (text, _) in enumerate(fields)
                    if i in chosen)


def stress_fields(t, ops_s, w, s, checking=False):
    """The stress status as ranked fields: t seconds in, ops/s, the
    workload counters w and the swapcache status s."""
    mb = s["swap_writes"]["pages"] * lib.PAGE_SIZE / 1e6
    return [(f"{t:5.0f}s", 0),
            (f"{ops_s:6.0f} ops/s", 1),
            (f"verified {w['reads_verified']}", 3),
            (f"ssd {w['ssd_pages']} pg", 5),
            (f"wrote {mb:.1f} MB", 6),
            (f"{s['state']}", 4),
            (f"curburst {s['curburst'] / 1e6:.2f} MB", 7),
            (f"failures {w['failures']}", 2)] + \
        ([("checking", 3)] if checking else [])


class StatusLine:
    def __init__(self, out=None, width=None, tty=None):
        from rich.console import Console
        self.out = out or sys.stdout
        self._console = Console(file=self.out)
        self.tty = self._console.is_terminal if tty is None else tty
        self._width = width
        self.shown = False      # a status is on the terminal's last line

    @property
    def width(self):
        return self._width or self._console.width

    def show(self, fields):
        line = fit(fields, self.width - 1)
        if self.tty:
            self.out.write("\r\x1b[K" + line)
            self.shown = True
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def message(self, text):
        """A line of its own (the status comes back at the next show)."""
        if self.shown:
            self.out.write("\r\x1b[K")
            self.shown = False
        self.out.write(text + "\n")
        self.out.flush()

    def close(self):
        if self.shown:
            self.out.write("\n")
            self.out.flush()
            self.shown = False
