# Sourced by the test and benchmark scripts: `venv DIR REQUIREMENTS MODULE` makes a Python venv at DIR with
# REQUIREMENTS installed, unless DIR's Python already imports MODULE.
venv() {
  if ! "$1/bin/python" -c "import $3" >/dev/null 2>&1; then
    rm -rf "$1"
    python3 -m venv "$1"
    "$1/bin/pip" install -q --disable-pip-version-check -r "$2"
  fi
}
