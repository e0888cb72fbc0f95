"""Cut what a GPU training run needs into pieces that fit the device tool's per-call transfer limit.

The device machine has no network: the bundled base GGUF, the tokenizer/config files of the
trainer's cache, the prepared training data and two pure-python packages it may lack (gguf,
accelerate) travel with the working tree, one piece per call (``carry``), and each call moves its
piece into the device's store (``receive`` in scripts/gpu/README.md). Nothing here is committed:
the output goes to ``build/gpu/xfer/callNN/`` (ignored by git).

    .venv/bin/python scripts/gpu/pack.py --calls 8
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from medcore.models import BUNDLED, bundled_path  # noqa: E402

META = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
        "special_tokens_map.json", "vocab.json", "merges.txt", "chat_template.jinja")


def extras_tarball(cache: Path, prepared: Path, vendor_pkgs: list[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=9) as tar:
        for name in META:
            if (cache / name).exists():
                tar.add(cache / name, f"meta/{name}")
        inner = io.BytesIO()
        with tarfile.open(fileobj=inner, mode="w:gz") as ptar:
            for rel in ("manifest.json", "terms/train.jsonl", "terms/val.jsonl", "sentences/train.jsonl",
                        "sentences/val.jsonl"):
                ptar.add(prepared / rel, f"prepared/{rel}")
        info = tarfile.TarInfo("prepared.tar.gz")
        info.size = len(inner.getvalue())
        tar.addfile(info, io.BytesIO(inner.getvalue()))
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                            "-d", tmp, *vendor_pkgs], check=True, capture_output=True)
            for wheel in sorted(Path(tmp).glob("*.whl")):
                shutil.unpack_archive(wheel, Path(tmp) / "vendor", "zip")
            tar.add(Path(tmp) / "vendor", "vendor")
    return buf.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--prepared", type=Path, default=REPO / "prepared")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "gpu" / "xfer")
    parser.add_argument("--vendor", nargs="*", default=["gguf==0.19.0", "accelerate==1.15.0"])
    args = parser.parse_args()

    from hfmodel.cache import hf_dir_for

    gguf = bundled_path("qwen2.5-coder-0.5b")
    cache = hf_dir_for("qwen2.5-coder-0.5b")
    extras = extras_tarball(cache, args.prepared, args.vendor)
    size = gguf.stat().st_size
    per_call = -(-(size + len(extras)) // args.calls)
    shutil.rmtree(args.out, ignore_errors=True)
    layout = []
    with open(gguf, "rb") as fh:
        for index in range(args.calls):
            folder = args.out / f"call{index:02d}"
            folder.mkdir(parents=True)
            budget = per_call - (len(extras) if index == args.calls - 1 else 0)
            chunk = fh.read(budget)
            (folder / f"part{index:02d}").write_bytes(chunk)
            if index == args.calls - 1:
                (folder / "extras.tar.gz").write_bytes(extras)
                if fh.read(1):
                    raise SystemExit("internal error: the pieces do not cover the file")
            layout.append({"call": index, "bytes": sum(p.stat().st_size for p in folder.iterdir())})
    print(json.dumps({"gguf": str(gguf), "sha256": BUNDLED["qwen2.5-coder-0.5b"].sha256, "extras_bytes": len(extras),
                      "calls": layout, "max_call_MiB": round(max(c["bytes"] for c in layout) / 2**20, 2)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
