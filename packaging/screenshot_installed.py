"""Screenshots of the installed app, driven the way a user drives it (issue 12's attention dock).

    python packaging/smoke.py --keep build/smoke-install          # build, install, self-test; kept
    .venv/bin/python packaging/screenshot_installed.py --prefix build/smoke-install

The installed launcher (``<prefix>/root/usr/bin/tsx-medtrans``, its default model from the model
package) runs on its own Xvfb display, offline (``unshare -n``) as ``nobody`` when run as root,
exactly as ``smoke.py`` runs the self-test. Then, with xdotool's keyboard and mouse only:

1. ``tsx-medtrans FILE`` opens the sample note (what the desktop entry's ``Exec=tsx-medtrans %F`` does);
2. Ctrl+Return translates it, once the model has loaded;
3. a click on a matched glossary term in the Terms panel opens its attention in the dock;
4. the screen is saved once the dock has drawn (``--out``), and once more after a click on the
   dock's head-view tab.

Nothing reaches into the app: the script sees only pixels, so what it saves is what a user sees.
Needs ``Xvfb`` and ``xdotool`` (``apt-get install xvfb xdotool``) and Pillow with XCB support.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageChops, ImageGrab, ImageStat

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from smoke import NOBODY, isolated  # noqa: E402

ROOT = HERE.parent
SCREEN = (1600, 1000)
SAMPLE = ROOT / "resources" / "samples" / "discharge_summary_zh.txt"


class Screen:
    """An Xvfb display, read as pixels and driven with xdotool."""

    def __init__(self, number: int):
        self.name = f":{number}"
        socket = Path(f"/tmp/.X11-unix/X{number}")
        # -ac: the app runs as another user (nobody); the display is private to this run anyway
        self.proc = subprocess.Popen(["Xvfb", self.name, "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24",
                                      "-nolisten", "tcp", "-ac"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"Xvfb {self.name} did not start")
            time.sleep(0.1)

    def xdo(self, *args: str) -> str:
        out = subprocess.run(["xdotool", *args], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "DISPLAY": self.name})
        return out.stdout.strip()

    def grab(self) -> Image.Image:
        return ImageGrab.grab(xdisplay=self.name).convert("RGB")

    def wait_still(self, box: tuple[int, int, int, int], still_s: float, timeout_s: float,
                   changed_from: Image.Image | None = None) -> Image.Image:
        """The screen once ``box`` has not changed for ``still_s`` (and differs from ``changed_from``)."""
        deadline = time.monotonic() + timeout_s
        last, since = self.grab(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.grab()
            if ImageChops.difference(now.crop(box), last.crop(box)).getbbox() is not None:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= still_s and (
                    changed_from is None or ImageChops.difference(now.crop(box), changed_from.crop(box)).getbbox()):
                return now
        raise TimeoutError(f"the screen did not settle within {timeout_s:.0f} s")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def ink(image: Image.Image, box: tuple[int, int, int, int]) -> int:
    """Dark (text) pixels in ``box`` of a light pane; 0 while the box is not a painted pane (the bare
    X root window is black)."""
    grey = image.crop(box).convert("L")
    if ImageStat.Stat(grey).mean[0] < 180:
        return 0
    return grey.point(lambda v: 255 if v < 90 else 0).histogram()[255]


def green_rows(image: Image.Image, box: tuple[int, int, int, int]) -> list[tuple[int, int]]:
    """Points (x, y) inside the light-green rows (terms found as expected) of the Terms table in ``box``:
    vertically the row's middle, horizontally a little into its first cell."""
    x0, y0, x1, y1 = box
    px = image.load()

    def green(x: int, y: int) -> bool:
        r, g, b = px[x, y]
        return g > 200 and g - r > 25 and g - b > 25

    rows: list[tuple[int, int]] = []
    run: list[int] = []  # the y of consecutive lines that are mostly green
    for y in range(y0, y1):
        if sum(green(x, y) for x in range(x0, x1, 4)) > (x1 - x0) // 16:
            run.append(y)
            continue
        if len(run) >= 10:
            mid = (run[0] + run[-1]) // 2
            first = next(x for x in range(x0, x1) if green(x, mid))
            rows.append((first + 12, mid))
        run = []
    return rows


def until(ready, deadline: float, message: str) -> None:
    """Poll ``ready()`` every second until it is true; TimeoutError(``message``) past ``deadline`` (monotonic)."""
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(message)
        time.sleep(1)


def fill_screen(screen: Screen, window: str, timeout_s: float) -> None:
    """Move and size the window to the whole screen; a window still being mapped ignores the first tries."""
    deadline = time.monotonic() + timeout_s
    want = f"Geometry: {SCREEN[0]}x{SCREEN[1]}"
    while want not in screen.xdo("getwindowgeometry", window):
        if time.monotonic() > deadline:
            raise TimeoutError("the window could not be sized to the screen")
        screen.xdo("windowmove", window, "0", "0")
        screen.xdo("windowsize", window, str(SCREEN[0]), str(SCREEN[1]))
        time.sleep(0.5)
    screen.xdo("windowfocus", "--sync", window)


def wait_drawn(screen: Screen, dock: tuple[int, int, int, int], view: tuple[int, int, int, int], timeout_s: float,
               changed_from: Image.Image | None = None) -> Image.Image:
    """The screen once the dock's web view shows a page (text in ``view``) and has been still for 3 s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        shot = screen.wait_still(dock, 3, deadline - time.monotonic(), changed_from)
        if ink(shot, view) > 1500:
            return shot
    raise TimeoutError(f"the attention view was not drawn within {timeout_s:.0f} s")


def tab_bar_y(image: Image.Image, box: tuple[int, int, int, int], xs: tuple[int, int]) -> int | None:
    """The middle of the dock's tab bar: the first band in ``box`` where both inactive tabs (at ``xs``)
    are the same mid grey."""
    px = image.load()
    band = [y for y in range(box[1], box[3])
            if px[xs[0], y] == px[xs[1], y] and 190 <= px[xs[0], y][0] <= 232 and len(set(px[xs[0], y])) == 1]
    runs: list[list[int]] = []
    for y in band:
        if runs and y == runs[-1][-1] + 1:
            runs[-1].append(y)
        else:
            runs.append([y])
    tall = [r for r in runs if len(r) >= 10]
    return (tall[0][0] + tall[0][-1]) // 2 if tall else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prefix", type=Path, required=True, help="an install made by `smoke.py --keep DIR`")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots" / "attention_dock_installed.png")
    p.add_argument("--row", type=int, default=0, help="which matched term to click (0 = the first green row)")
    p.add_argument("--display", type=int, default=97)
    p.add_argument("--timeout", type=float, default=300, help="seconds allowed for each step")
    args = p.parse_args(argv)
    for tool in ("Xvfb", "xdotool"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install xvfb xdotool")
    install, home = args.prefix.resolve() / "root", args.prefix.resolve() / "home"
    launcher = install / "usr" / "bin" / "tsx-medtrans"
    if not launcher.exists() or not home.is_dir():
        raise SystemExit(f"no install under {args.prefix}: run `python packaging/smoke.py --keep {args.prefix}` first")
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    note = Path(tempfile.mkdtemp(prefix="shot-", dir=home / "tmp")) / SAMPLE.name
    shutil.copy(SAMPLE, note)
    if root:
        for path in (note.parent, note):
            os.chown(path, *NOBODY)
    screen = Screen(args.display)
    # The app's own output goes to a file: a pipe nobody reads would fill up (QtWebEngine logs a lot) and block it.
    app_log = Path(tempfile.gettempdir()) / (args.out.stem + "-app.log")
    with app_log.open("wb") as log:
        app = subprocess.Popen(isolated([str(launcher), str(note)], install, home, root, display=screen.name),
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        window = screen.xdo("search", "--sync", "--onlyvisible", "--name", "TSX-MedTrans").split()[0]
        w, h = SCREEN
        fill_screen(screen, window, args.timeout)
        target = (int(w * 0.40), 40, int(w * 0.70), int(h * 0.25))   # the translation pane's first lines
        terms = (int(w * 0.72), 60, int(w - 20), int(h * 0.55))       # the Terms table
        status = (0, h - 30, w // 2, h)                               # "Translating…", "Done: …"
        t0 = time.monotonic()
        # Ctrl+Return does nothing until the model has loaded, and a second one would start the
        # translation again (the newest request wins): press it until the status line changes.
        while True:
            if time.monotonic() - t0 > args.timeout:
                raise TimeoutError("the translation did not start: did the model load?")
            before = screen.wait_still((0, 0, w, h), 3, args.timeout)
            screen.xdo("windowfocus", "--sync", window)
            screen.xdo("key", "--clearmodifiers", "ctrl+Return")
            time.sleep(2)
            if ImageChops.difference(screen.grab().crop(status), before.crop(status)).getbbox():
                break
        until(lambda: ink(screen.grab(), target) >= 50, t0 + args.timeout, "no translation appeared")
        # Done when the Terms panel has checked the translation: "pending" rows turn green (found) or red.
        until(lambda: bool(green_rows(screen.grab(), terms)), t0 + args.timeout,
              "the translation did not finish: no term was checked")
        done = screen.wait_still((0, 0, w, h), 3, args.timeout)
        print(f"translated in about {time.monotonic() - t0:.0f} s after start", flush=True)
        rows = green_rows(done, terms)
        if len(rows) <= args.row:
            raise SystemExit(f"only {len(rows)} matched terms in the Terms panel; no row {args.row} to click")
        x, y = rows[args.row]
        t1 = time.monotonic()
        screen.xdo("mousemove", str(x), str(y), "click", "1")
        dock, view = (0, int(h * 0.45), w, h), (0, int(h * 0.6), w, h - 40)
        shown = wait_drawn(screen, dock, view, args.timeout)
        print(f"term view drawn {time.monotonic() - t1:.1f} s after the click (screen still for 3 s)", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shown.save(args.out)
        print(f"wrote {args.out}")
        tab_y = tab_bar_y(shown, dock, (int(w * 0.375), int(w * 0.625)))
        if tab_y is None:
            raise SystemExit("could not find the dock's tab bar (Term | Head view | Model view)")
        t2 = time.monotonic()
        screen.xdo("mousemove", str(int(w * 0.375)), str(tab_y), "click", "1")
        head = wait_drawn(screen, dock, view, args.timeout, changed_from=shown)
        print(f"head view drawn {time.monotonic() - t2:.1f} s after the click", flush=True)
        head_out = args.out.with_name(args.out.stem + "_head.png")
        head.save(head_out)
        print(f"wrote {head_out}")
        return 0
    except (TimeoutError, SystemExit, IndexError):
        failed = Path(tempfile.gettempdir()) / (args.out.stem + "-failed.png")  # not into the docs
        screen.grab().save(failed)
        print(f"the screen at the failure: {failed}; the app's output: {app_log}", file=sys.stderr)
        raise
    finally:
        if app.poll() is None:
            os.killpg(app.pid, signal.SIGTERM)
            try:
                app.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(app.pid, signal.SIGKILL)
        screen.close()
        shutil.rmtree(note.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
