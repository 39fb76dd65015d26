"""Re-vendor the dashboard's JavaScript from the npm registry, pinned and checked.

    .venv/bin/python scripts/vendor_assets.py            # verify the files in the package
    .venv/bin/python scripts/vendor_assets.py --fetch    # download, check, write

Each asset is one file out of one npm tarball at a pinned version. ``--fetch`` downloads the
tarball from https://registry.npmjs.org, checks it against the registry's ``dist.integrity``
(sha512, Subresource-Integrity format), extracts the file, and checks the file's sha256 against
the pin below before writing it under ``viewzenix/dashboard/static/vendor/``. To upgrade: change
``version``, run with ``--fetch --update-pins``, read the diff, commit. Nothing here runs at
``make run``: the app only serves the committed files (no CDN, no Node).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import sys
import tarfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"
VENDOR_DIR = Path(__file__).resolve().parent.parent / "viewzenix" / "dashboard" / "static" / "vendor"


@dataclass(frozen=True)
class Asset:
    package: str
    version: str
    path: str  # inside the tarball, under package/
    dest: str  # file name under VENDOR_DIR
    sha256: str


ASSETS = (
    # htmx 2.0.x: the auth hook uses htmx:configRequest / e.detail.headers (4.x renamed both).
    Asset(
        "htmx.org",
        "2.0.8",
        "dist/htmx.min.js",
        "htmx-2.0.8.min.js",
        "22283ef68cb7545914f0a88a1bdedc7256a703d1d580c1d255217d0a50d31313",
    ),
    Asset(
        "lightweight-charts",
        "5.2.1",
        "dist/lightweight-charts.standalone.production.js",
        "lightweight-charts-5.2.1.standalone.production.js",
        "e21cc5caa0226ef30bd8549c50b9ef926615f2a4ee6b4e486353477a55f598cf",
    ),
    Asset(
        "@supabase/supabase-js",
        "2.119.1",
        "dist/umd/supabase.js",
        "supabase-js-2.119.1.umd.js",
        "d60f104b9cc23ca022ea6f7574e256aeea84823fe97806c241524b6355031800",
    ),
)


def _get(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "viewzenix-vendor/1"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read()


def fetch(asset: Asset) -> bytes:
    """Download ``asset``'s tarball, check its registry integrity, return the file's bytes."""
    meta = json.loads(_get(f"{REGISTRY}/{urllib.parse.quote(asset.package, safe='@')}/{asset.version}"))
    tarball = _get(meta["dist"]["tarball"])
    algo, _, expected = meta["dist"]["integrity"].partition("-")
    actual = base64.b64encode(hashlib.new(algo, tarball).digest()).decode()
    if actual != expected:
        raise SystemExit(f"{asset.package}@{asset.version}: tarball integrity mismatch")
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        member = tar.extractfile(f"package/{asset.path}")
        if member is None:
            raise SystemExit(f"{asset.package}@{asset.version}: {asset.path} is not a file")
        return member.read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fetch", action="store_true", help="download from the npm registry")
    parser.add_argument("--update-pins", action="store_true", help="print new sha256 pins instead of failing")
    args = parser.parse_args()
    VENDOR_DIR.mkdir(parents=True, exist_ok=True)
    failed = False
    for asset in ASSETS:
        target = VENDOR_DIR / asset.dest
        data = fetch(asset) if args.fetch else target.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != asset.sha256:
            if args.update_pins:
                print(f"{asset.dest}: new pin {digest}")
            else:
                print(f"{asset.dest}: sha256 {digest} != pinned {asset.sha256}", file=sys.stderr)
                failed = True
                continue
        if args.fetch:
            target.write_bytes(data)
        print(f"ok  {asset.package}@{asset.version} -> {target.name} ({len(data)} bytes)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
