"""What `evaluate()` shows while it runs: a rich bar in a terminal, an ipywidgets bar in
Jupyter when ipywidgets is installed, else a line now and then (notebooks, CI logs)."""

from __future__ import annotations

import sys
import time
from typing import Protocol

from evalledger.execution.progress import LiveProgress

PLAIN_EVERY = 5.0  # seconds between lines of the plain display


class Display(Protocol):
    def update(self, progress: LiveProgress) -> None: ...
    def close(self, progress: LiveProgress) -> None: ...


def _in_jupyter() -> bool:
    shell = sys.modules.get("IPython")
    ip = shell.get_ipython() if shell is not None else None  # type: ignore[attr-defined]
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _line(progress: LiveProgress) -> str:
    eta = progress.eta_seconds
    return (f"{progress.done}/{progress.total} done, {progress.failed} failed, "
            f"{progress.items_per_second:.1f} items/s" + (f", about {eta:.0f} s left" if eta is not None else ""))


class RichDisplay:
    def __init__(self, title: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("failed {task.fields[failed]}"), TimeRemainingColumn(),
                            console=Console(stderr=True), transient=False)
        self.task = self.bar.add_task(title, total=None, failed=0)
        self.bar.start()

    def update(self, progress: LiveProgress) -> None:
        self.bar.update(self.task, completed=progress.done, total=progress.total, failed=progress.failed)

    def close(self, progress: LiveProgress) -> None:
        self.update(progress)
        self.bar.stop()


class WidgetDisplay:
    def __init__(self, title: str) -> None:
        import ipywidgets
        from IPython.display import display

        self.bar = ipywidgets.IntProgress(value=0, min=0, max=1, description=title[:20])
        self.label = ipywidgets.Label("")
        display(ipywidgets.HBox([self.bar, self.label]))

    def update(self, progress: LiveProgress) -> None:
        self.bar.max = max(1, progress.total)
        self.bar.value = progress.done
        self.label.value = _line(progress)

    def close(self, progress: LiveProgress) -> None:
        self.update(progress)


class PlainDisplay:
    def __init__(self, title: str) -> None:
        self.title = title
        self.last = 0.0

    def update(self, progress: LiveProgress) -> None:
        if time.monotonic() - self.last >= PLAIN_EVERY:
            self.last = time.monotonic()
            print(f"{self.title}: {_line(progress)}", file=sys.stderr, flush=True)

    def close(self, progress: LiveProgress) -> None:
        print(f"{self.title}: {_line(progress)}", file=sys.stderr, flush=True)


class NoDisplay:
    def update(self, progress: LiveProgress) -> None:
        pass

    def close(self, progress: LiveProgress) -> None:
        pass


def make_display(title: str, show: bool | None) -> Display:
    """`show`: True or False, or None for: a bar when someone watches (a terminal or Jupyter)."""
    if show is False:
        return NoDisplay()
    if _in_jupyter():
        try:
            return WidgetDisplay(title)
        except ImportError:
            return PlainDisplay(title)
    if sys.stderr.isatty():
        return RichDisplay(title)
    return PlainDisplay(title) if show else NoDisplay()
