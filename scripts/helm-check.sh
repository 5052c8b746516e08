#!/usr/bin/env bash
# Checks the Helm chart in deploy/helm/eventgate. helm itself cannot be installed from the
# registries these machines reach (no Debian package, nothing on PyPI or npm), so the chart
# is rendered by tools/helm-render (Go's text/template with the Helm functions the chart
# uses; Go from Debian) and each manifest is validated against the Kubernetes 1.30 schemas
# by kubernetes-validate (PyPI, offline), with assertions per values case. Where helm is
# installed, `helm lint` and `helm template` run as well.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

command -v go >/dev/null 2>&1 || apt_install golang-go
ensure_python_venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r tools/helm-render/requirements.txt

work=$(mktemp -d /tmp/eventgate-helm.XXXXXX)
on_exit "rm -rf '$work'"
(cd tools/helm-render && GOFLAGS=-mod=mod GOCACHE="$work/cache" go build -o "$work/helm-render" .)
log "checking the Helm chart (rendered by tools/helm-render, validated by kubernetes-validate)"
.venv/bin/python tools/helm-render/check.py "$work/helm-render"

if command -v helm >/dev/null 2>&1; then
  helm lint deploy/helm/eventgate --set secret.databaseUrl=x,secret.platformKey=x,secret.secretsKey=x
  helm template rel deploy/helm/eventgate --set secret.databaseUrl=x,secret.platformKey=x,secret.secretsKey=x >/dev/null
fi
