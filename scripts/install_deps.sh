#!/usr/bin/env bash
# Installs the Debian 12 packages Tandem builds and tests with. Idempotent: exits at once when every
# package is already installed. Run as root.
set -euo pipefail
PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git python3 python3-pip python3-venv unzip curl
  libabsl-dev libgoogle-glog-dev nlohmann-json3-dev libcpp-httplib-dev prometheus-cpp-dev
  libxxhash-dev libssl-dev zlib1g-dev liblz4-dev libzstd-dev libfmt-dev
  librocksdb-dev libhiredis-dev libucx-dev ucx-utils redis-server prometheus
  libgtest-dev libgmock-dev libbenchmark-dev
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# kubectl (with its built-in kustomize) renders deploy/kubernetes in the tests; Debian ships it
# as kubernetes-client. A kubectl from elsewhere already on PATH is used as it is.
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
echo "install_deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install_deps: must run as root to install: ${missing[*]}" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
