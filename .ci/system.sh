#!/usr/bin/env bash
# The machine's side of `make test` and the program's build, as .ci/system-requirements lists it.
#
#   bash .ci/system.sh pythons [ROLE]   the Python versions (ROLE: lambda or tools), one a line, default last
#   bash .ci/system.sh github-outputs   python-versions and node-version, in $GITHUB_OUTPUT's format
#   bash .ci/system.sh missing          the Debian packages none of whose markers is found, one a line
#   bash .ci/system.sh install          installs those with apt-get: as root, else through passwordless sudo
#
# SYSTEM_REQUIREMENTS names another list (the tests use it).
set -euo pipefail
list=${SYSTEM_REQUIREMENTS:-"$(dirname "$0")/system-requirements"}
[ -r "$list" ] || { echo "cannot read $list (the list of what the tests need from the machine)" >&2; exit 2; }

# The list's lines of one kind, comments removed: "python 3.12 lambda", "deb make make", ...
entries() { awk -v kind="$1" '{ sub(/#.*/, "") } $1 == kind { $1 = $1; print }' "$list"; }

present() {  # any marker found: a command on PATH, or an absolute path pattern that matches a file
  local marker
  for marker in "$@"; do
    case $marker in
      /*) compgen -G "$marker" >/dev/null && return 0 ;;
      *) command -v "$marker" >/dev/null && return 0 ;;
    esac
  done
  return 1
}

missing() {
  local _kind package markers
  while read -r _kind package markers; do
    # shellcheck disable=SC2086 # markers are separate words
    present $markers || echo "$package"
  done < <(entries deb)
}

install() {
  local packages
  mapfile -t packages < <(missing)
  [ ${#packages[@]} -gt 0 ] || return 0
  local as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      as_root=(sudo -n)
    else
      echo "The tests need packages that are not installed: ${packages[*]}. Installing them needs root:" \
        "run this as root, give this user passwordless sudo (as hosted CI runners do), or install them" \
        "first: sudo apt-get install ${packages[*]}" >&2
      return 1
    fi
  fi
  if ! command -v apt-get >/dev/null; then
    echo "The tests need ${packages[*]} (Debian/Ubuntu package names) and this system has no apt-get:" \
      "install their equivalents with its package manager" >&2
    return 1
  fi
  echo "installing ${packages[*]} from the distribution's packages${as_root[*]:+ (through sudo)}"
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${packages[@]}"
  mapfile -t packages < <(missing)
  if [ ${#packages[@]} -gt 0 ]; then
    echo "installed, but still not found: ${packages[*]} (see the markers in $list)" >&2
    return 1
  fi
}

case ${1:-} in
  pythons) entries python | awk -v role="${2:-}" 'role == "" || $3 == role { print $2 }' ;;
  github-outputs)
    echo "python-versions<<END_OF_PYTHON_VERSIONS"
    entries python | awk '{ print $2 }'
    echo "END_OF_PYTHON_VERSIONS"
    echo "node-version=$(entries node | awk '{ print $2 }')"
    ;;
  missing) missing ;;
  install) install ;;
  *)
    echo "usage: bash .ci/system.sh pythons [lambda|tools] | github-outputs | missing | install" >&2
    exit 2
    ;;
esac
