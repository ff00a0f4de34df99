# Prerequisite checks shared by the shell scripts (sourced, not run): each failure is one line
# on stderr naming what is missing and how to get it, then exit 2, as the `dimensionx` commands.
# PYTHON: the interpreter dimensionx is installed in (default python3).

SCRIPT="$(basename "$0")"
PYTHON="${PYTHON:-python3}"

fail() {
  echo "$SCRIPT: error: $1" >&2
  exit 2
}

need_command() {  # NAME WHY FIX
  command -v "$1" > /dev/null 2>&1 || fail "$1 is not installed or not on PATH ($2): $3"
}

need_file() {  # PATH WHAT FIX
  [ -f "$1" ] || fail "$2 $1 does not exist: $3"
}

need_module() {  # MODULE WHY FIX
  "$PYTHON" -c "import $1" > /dev/null 2>&1 || fail "the Python package $1 is not installed in $PYTHON ($2): $3"
}

need_dimensionx() {
  need_command "$PYTHON" "the Python interpreter that runs dimensionx; set PYTHON to use another" "install Python 3.10+"
  need_module dimensionx "this script runs dimensionx" 'pip install "torch==2.13.0" -e . (README command 1)'
}
