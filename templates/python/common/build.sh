#!/bin/sh
# Builds {{name}}.wasm, the WebAssembly component the manifest points at,
# from app.py and the world in wit/world.wit. Needs componentize-py:
#   pip install -r requirements.txt
set -eu
cd "$(dirname "$0")"
componentize-py -d wit -w {{kind}} componentize app -o {{name}}.wasm
