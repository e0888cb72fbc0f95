"""Render ``resources/icons/tsx-medtrans.svg`` to the PNG sizes the desktop entry and the Windows
installer use, and a Windows ``.ico`` (PNG-compressed entries, Vista and later).

    python packaging/make_icons.py        # needs PySide6 (QtSvg); outputs are committed
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

ICONS = Path(__file__).resolve().parent.parent / "resources" / "icons"
SIZES = (16, 32, 48, 64, 128, 256)


def render_png(svg: Path, size: int) -> bytes:
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(0)
    painter = QPainter(image)
    QSvgRenderer(str(svg)).render(painter)
    painter.end()
    data = QByteArray()
    buf = QBuffer(data)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buf, "PNG")
    return bytes(data.data())


def write_ico(pngs: dict[int, bytes], path: Path) -> None:
    header = struct.pack("<HHH", 0, 1, len(pngs))
    offset = 6 + 16 * len(pngs)
    entries, blobs = b"", b""
    for size, blob in sorted(pngs.items()):
        dim = 0 if size >= 256 else size  # 0 means 256 in an ICONDIRENTRY
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(blob), offset + len(blobs))
        blobs += blob
    path.write_bytes(header + entries + blobs)


def main() -> int:
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1] + ["-platform", "offscreen"])  # noqa: F841
    svg = ICONS / "tsx-medtrans.svg"
    pngs = {size: render_png(svg, size) for size in SIZES}
    for size in (48, 256):
        (ICONS / f"tsx-medtrans-{size}.png").write_bytes(pngs[size])
    write_ico(pngs, ICONS / "tsx-medtrans.ico")
    print(f"wrote {', '.join(p.name for p in sorted(ICONS.glob('tsx-medtrans*')))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
