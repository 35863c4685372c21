#!/usr/bin/env bash
# Installs the Debian 12 packages sstshim needs to build and test.
#   deps.sh install   install whatever is missing (apt-get; needs root)
#   deps.sh ensure    same, but only touches apt when something is missing
set -euo pipefail

PKGS=(
  build-essential pkg-config clang binutils
  libevent-dev libsodium-dev uthash-dev check
  python3 python3-dissononce        # independent Noise implementation for interop tests
  iproute2 nftables iputils-ping socat  # network namespaces + link-emulator tests
  curl wget netcat-openbsd          # real programs run under the shim
  strace                            # test_shim_unset.sh: no extra system call per connection
  redis-server redis-tools          # an unmodified server behind sstd, a shimmed redis-cli
  nodejs openjdk-17-jdk-headless    # test_shim_apps.sh: node (libuv) and Java (javac, once per run)
  iperf3 gnuplot-nox linux-perf     # make bench: kernel TCP baseline, plots, profiles; iperf3 also test_shim_sst_exit.sh
  nginx-light wrk valgrind          # make bench (9): cost of the shim on sockets it does not carry
  ngtcp2-server ngtcp2-client kcptun openssl  # make bench (1): other encrypted UDP transports
  postgresql-15 git                 # test_shim_listen_apps.sh: postgres, git daemon under SST_LISTEN
  tcl openssh-client openssh-server  # test_shim_apps_heavy.sh: tclsh socket -async; scp, sftp, git over ssh://
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: not root; install these packages first: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
