#!/usr/bin/env bash
# scripts/setup.sh: make this Debian 12 machine ready to build and test qsapi.
#
# Idempotent. It
#   1. installs the Debian packages qsapi needs (only those missing; needs root or sudo);
#   2. when the system OpenSSL is older than 3.5, builds OpenSSL 3.5.x from Debian 13's source
#      package into a cache outside the checkout (once; every later run reuses it);
#   3. prints the OpenSSL prefix to use (also written to $QSAPI_CACHE_DIR/openssl.prefix).
#
# The OpenSSL source is fetched with apt's own machinery, from the mirror this machine's apt is
# already configured with, through a private apt configuration and state directory: the machine's
# own apt sources and lists are never touched. The newest 3.5.x the mirror actually serves wins
# (a version listed in the index whose files answer 404 is skipped).
#
# Environment:
#   QSAPI_CACHE_DIR   cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/qsapi)
#   QSAPI_OPENSSL_PREFIX  use this OpenSSL >= 3.5 instead of building one
#   QSAPI_SKIP_APT=1  do not install Debian packages (for machines prepared otherwise)
set -euo pipefail

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

cache_dir=${QSAPI_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qsapi}
mkdir -p "$cache_dir"

# --- 1. Debian packages --------------------------------------------------------------------
packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates xz-utils
  clang clang-format clang-tidy lld libclang-rt-dev llvm
  libsodium-dev softhsm2 libp11-kit-dev opensc
  libsqlite3-dev sqlite3 nlohmann-json3-dev libcli11-dev libtomlplusplus-dev
  libpq-dev postgresql-15  # the PostgreSQL metadata store and the real server its tests start
  haproxy  # TCP pass-through in front of the cluster demo's nodes
  libspdlog-dev libfmt-dev libboost-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  valgrind nodejs
  libssl-dev  # the system OpenSSL 3.0: the fixture of the test that configure refuses it
)
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ "${QSAPI_SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$p")
  done
  # npm is only needed when node did not come with it (nodesource's nodejs bundles npm).
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# --- 2. OpenSSL >= 3.5 ---------------------------------------------------------------------
openssl_is_35() {  # $1 = openssl binary; true when it reports 3.5 or newer
  local v
  v=$("$1" version 2>/dev/null | awk '{print $2}') || return 1
  [ -n "$v" ] || return 1
  dpkg --compare-versions "${v%%-*}" ge 3.5.0
}

if [ -n "${QSAPI_OPENSSL_PREFIX:-}" ]; then
  [ -x "$QSAPI_OPENSSL_PREFIX/bin/openssl" ] && OPENSSL_CONF=/dev/null openssl_is_35 "$QSAPI_OPENSSL_PREFIX/bin/openssl" \
    || die "QSAPI_OPENSSL_PREFIX=$QSAPI_OPENSSL_PREFIX holds no OpenSSL >= 3.5"
  printf '%s\n' "$QSAPI_OPENSSL_PREFIX" >"$cache_dir/openssl.prefix"
  printf '%s\n' "$QSAPI_OPENSSL_PREFIX"
  exit 0
fi

# A system OpenSSL >= 3.5 with static libraries (Debian 13's libssl-dev) needs no build.
if command -v openssl >/dev/null 2>&1 && openssl_is_35 "$(command -v openssl)" \
   && ls /usr/lib/*/libcrypto.a /usr/lib/libcrypto.a >/dev/null 2>&1; then
  printf '%s\n' /usr >"$cache_dir/openssl.prefix"
  printf '%s\n' /usr
  exit 0
fi

# Build flags are part of the cache key, so a change here rebuilds instead of reusing a stale tree.
# no-shared + -fPIC: static libraries that qsapi links with hidden symbols (see docs/DECISIONS.md),
# so that a system libcrypto 3.0 loaded into the same process (SoftHSM2) can never clash with it.
config_flags=(no-shared no-tests no-docs -fPIC)
flags_id=$(printf '%s ' "${config_flags[@]}" | sha256sum | cut -c1-12)

# Reuse any complete build already in the cache (newest version first).
reuse=""
for stamp in $(ls -1d "$cache_dir"/openssl-3.5.*-"$flags_id"/.complete 2>/dev/null | sort -rV); do
  reuse=$(dirname "$stamp"); break
done
if [ -n "$reuse" ]; then
  printf '%s\n' "$reuse" >"$cache_dir/openssl.prefix"
  printf '%s\n' "$reuse"
  exit 0
fi

# Private apt configuration: deb-src lines for Debian 13 (trixie) on the mirror(s) this machine's apt already uses.
apt_dir="$cache_dir/apt"
rm -rf "$apt_dir"
mkdir -p "$apt_dir"/etc/sources.list.d "$apt_dir"/etc/preferences.d "$apt_dir"/etc/apt.conf.d \
  "$apt_dir"/etc/trusted.gpg.d "$apt_dir"/state/lists/partial "$apt_dir"/cache/archives/partial

# Debian's own mirrors among the configured sources (deb822 .sources files and one-line .list files).
# Files that do not exist are skipped; "|| true" keeps pipefail from turning "no match" into an exit.
mirrors=$( {
  cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -nE 's/^[[:space:]]*URIs:[[:space:]]*//p' | tr ' ' '\n' || true
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | sed -nE 's/\[[^]]*\]//; s/^[[:space:]]*deb[[:space:]]+([^[:space:]]+).*/\1/p' || true
} | grep -E '^(https?|file)://' | grep -E '/debian(-security)?/?$' | sed -E 's#/+$##' | sort -u || true)
[ -n "$mirrors" ] || die "no Debian mirror found in /etc/apt/sources.list{,.d}: cannot fetch OpenSSL 3.5 sources"

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || die "$keyring missing (package debian-archive-keyring)"
: >"$apt_dir/etc/sources.list"
for m in $mirrors; do
  case "$m" in
    */debian-security) echo "deb-src [signed-by=$keyring] $m trixie-security main" ;;
    *) echo "deb-src [signed-by=$keyring] $m trixie main"
       echo "deb-src [signed-by=$keyring] $m trixie-updates main" ;;
  esac
done >>"$apt_dir/etc/sources.list"

apt_opts=(
  -o "Dir::Etc=$apt_dir/etc" -o "Dir::Etc::sourcelist=$apt_dir/etc/sources.list"
  -o "Dir::Etc::sourceparts=$apt_dir/etc/sources.list.d" -o "Dir::Etc::parts=$apt_dir/etc/apt.conf.d"
  -o "Dir::Etc::preferencesparts=$apt_dir/etc/preferences.d" -o "Dir::Etc::trustedparts=$apt_dir/etc/trusted.gpg.d"
  -o "Dir::State=$apt_dir/state" -o "Dir::Cache=$apt_dir/cache" -o "Debug::NoLocking=1"
  -o "APT::Sandbox::User=root"
)
log "reading Debian 13 source index from: $(echo $mirrors)"
apt-get "${apt_opts[@]}" update -qq >/dev/null 2>"$apt_dir/update.err" || { cat "$apt_dir/update.err" >&2; die "apt-get update on the private source list failed"; }

versions=$(apt-cache "${apt_opts[@]}" showsrc openssl 2>/dev/null | awk '/^Version: 3\.5\./ {print $2}' | sort -u | sort -rV)
[ -n "$versions" ] || die "the mirror lists no openssl 3.5.x source package for trixie"

src_dir="$cache_dir/src"
mkdir -p "$src_dir"
chosen=""; tarball=""
for v in $versions; do
  upstream=${v%%-*}
  want="openssl_${upstream}.orig.tar.gz"
  if [ ! -f "$src_dir/$want" ]; then
    log "trying openssl source $v"
    # apt checks every downloaded file against the hash in the signed Sources index.
    # The orig tarball is all we build from; Debian's packaging files may be missing and are not needed.
    (cd "$src_dir" && apt-get "${apt_opts[@]}" source --download-only -qq "openssl=$v" >/dev/null 2>&1) || true
  fi
  if [ -f "$src_dir/$want" ] && tar -tzf "$src_dir/$want" >/dev/null 2>&1; then
    chosen=$upstream; tarball="$src_dir/$want"; break
  fi
  log "openssl $v is listed but its source is not served; trying an older one"
  rm -f "$src_dir/$want"
done
[ -n "$chosen" ] || die "none of the listed OpenSSL 3.5.x sources could be downloaded: $(echo $versions)"

prefix="$cache_dir/openssl-$chosen-$flags_id"
build="$cache_dir/build-openssl-$chosen"
rm -rf "$build" "$prefix"
mkdir -p "$build"
log "building OpenSSL $chosen into $prefix (first run only; a few minutes)"
tar -xzf "$tarball" -C "$build" --strip-components=1
(
  cd "$build"
  ./Configure --prefix="$prefix" --openssldir="$prefix/ssl" --libdir=lib "${config_flags[@]}" >"$build/configure.log" 2>&1
  make -j"$(nproc)" build_sw >"$build/make.log" 2>&1
  make install_sw install_ssldirs >"$build/install.log" 2>&1
) || { tail -30 "$build"/*.log >&2; die "OpenSSL build failed (logs in $build)"; }
OPENSSL_CONF="$prefix/ssl/openssl.cnf" openssl_is_35 "$prefix/bin/openssl" || die "the OpenSSL built in $prefix does not report 3.5"
touch "$prefix/.complete"
rm -rf "$build"
printf '%s\n' "$prefix" >"$cache_dir/openssl.prefix"
printf '%s\n' "$prefix"
