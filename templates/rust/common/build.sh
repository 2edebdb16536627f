#!/bin/sh
# Builds {{crate}}.wasm, the WebAssembly component the manifest points at.
set -eu
cd "$(dirname "$0")"
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi
cargo build --release --target wasm32-wasip2
echo "built target/wasm32-wasip2/release/{{crate}}.wasm"
