# Sourced by the test and benchmark scripts: `venv DIR REQUIREMENTS MODULE` makes a Python venv at DIR with
# REQUIREMENTS installed, unless DIR's Python already imports MODULE and was made from the same REQUIREMENTS
# (a copy of them is kept in DIR: a changed file makes the venv again).
venv() {
  if ! "$1/bin/python" -c "import $3" >/dev/null 2>&1 || ! cmp -s "$2" "$1/labd-requirements.txt"; then
    rm -rf "$1"
    python3 -m venv "$1"
    "$1/bin/pip" install -q --disable-pip-version-check -r "$2"
    cp "$2" "$1/labd-requirements.txt"
  fi
}
