# Shared by bin/pymail-server and bin/test: make sure .venv exists and has pymail installed.
# Re-installs when pyproject.toml changed since the last install. Sourced, not run.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"

ensure_venv() {
  local extras="$1"
  local stamp="$VENV/.pymail-installed$extras"
  if ! command -v "$PY" >/dev/null 2>&1; then
    echo "pymail: $PY not found; install Python 3.11 or newer" >&2; exit 1
  fi
  if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "pymail: Python 3.11 or newer is needed ($PY is $("$PY" -V 2>&1))" >&2; exit 1
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    echo "pymail: creating virtualenv $VENV" >&2
    if ! "$PY" -m venv "$VENV" 2>/dev/null; then
      rm -rf "$VENV"
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        ver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "python$ver-venv" >&2 \
          || DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >&2
        "$PY" -m venv "$VENV"
      else
        echo "pymail: '$PY -m venv' failed; install python3-venv (Debian) and retry" >&2; exit 1
      fi
    fi
  fi
  if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    echo "pymail: installing pymail$extras into $VENV (log: $VENV/install.log)" >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip > "$VENV/install.log" 2>&1 || true
    if ! "$VENV/bin/python" -m pip install -q -e "$ROOT$extras" >> "$VENV/install.log" 2>&1; then
      cat "$VENV/install.log" >&2
      echo "pymail: installing pymail$extras failed (see above)" >&2; exit 1
    fi
    touch "$stamp"
  fi
}
