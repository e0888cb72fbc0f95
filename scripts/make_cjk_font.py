"""Rebuild ``resources/fonts/wqy-microhei.woff``, the CJK font the attention pages embed glyphs from.

Many Linux desktops in clinics have no CJK font, and an exported attention page is opened on
machines nobody controls: without glyphs every Chinese token is a tofu box. The app therefore ships
one CJK font, WenQuanYi Micro Hei (Apache-2.0, "or GPL-3+ with font exception"), and every page
embeds the subset of glyphs it uses (:mod:`desktop.fonts`).

The font comes from Debian's package (a registry this project may use), not from a website:

    python -m scripts.make_cjk_font            # apt-get download, extract, convert, write provenance

It takes face 0 (Micro Hei; face 1 is the monospaced variant) of the package's TTC and stores it as
WOFF (zlib-compressed sfnt: 2.1 MB instead of 4.6 MB; fontTools reads it back for subsetting).
The package's sha256 and the output's are written to ``resources/fonts/SOURCE.json``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "resources" / "fonts"
PACKAGE, VERSION = "fonts-wqy-microhei", "0.2.0-beta-3.1"
TTC = "usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
FONT = "wqy-microhei.woff"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    from fontTools.ttLib import TTFont

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subprocess.run(["apt-get", "download", f"{PACKAGE}={VERSION}"], cwd=work, check=True)
        deb = next(work.glob("*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "x")], check=True)
        font = TTFont(work / "x" / TTC, fontNumber=0, recalcTimestamp=False)  # reproducible bytes
        font.flavor = "woff"
        OUT.mkdir(parents=True, exist_ok=True)
        tmp_out = OUT / (FONT + ".tmp")
        font.save(tmp_out)
        tmp_out.replace(OUT / FONT)
        source = {
            "font": FONT, "family": font["name"].getDebugName(1), "version": font["name"].getDebugName(5),
            "sha256": sha256(OUT / FONT), "debian_package": f"{PACKAGE}_{VERSION}_all.deb",
            "debian_package_sha256": sha256(deb), "member": TTC, "face": 0,
            "license": "Apache-2.0 (or GPL-3+ with font exception); see LICENSE.Apache-2.0",
            "rebuild": "python -m scripts.make_cjk_font",
        }
    (OUT / "SOURCE.json").write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(source, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
