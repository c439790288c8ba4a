#!/usr/bin/env bash
# Makes (once) and prints the path of the Python virtual environment the SWR and ECR
# stand-ins run in (tests/it/support/cloud_api.py): Huawei's huaweicloudsdkcore and AWS's
# botocore, pinned in cloud_requirements.txt, under
# ${IMAGE_MIGRATOR_CLOUD_HOME:-~/.cache/image-migrator-cloud}, reused while the pins stay
# the same. ci/test runs it before cargo test; the tests run it themselves when the venv
# is missing, so `cargo test` alone works. A lock keeps parallel tests from building it
# together. Made like ci/lint's venv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
requirements=$here/cloud_requirements.txt
CLOUD_HOME=${IMAGE_MIGRATOR_CLOUD_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/image-migrator-cloud}
VENV=$CLOUD_HOME/venv
pins=$(grep -v '^#' "$requirements")

ready() {
    [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/pins" 2>/dev/null)" = "$pins" ]
}

if ! ready; then
    mkdir -p "$CLOUD_HOME"
    exec 9>"$CLOUD_HOME/.lock"
    flock 9
    if ! ready; then
        if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
            echo "[cloud_venv] installing python3-venv" >&2
            apt-get update -qq >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >&2
        fi
        echo "[cloud_venv] installing the stand-ins' packages into $VENV" >&2
        rm -rf "$VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            --no-deps -r "$requirements" >&2
        "$VENV/bin/python" -c 'import huaweicloudsdkcore.signer.signer, botocore.auth, prometheus_client.parser' >&2
        printf '%s' "$pins" >"$VENV/pins"
    fi
fi
printf '%s\n' "$VENV"
