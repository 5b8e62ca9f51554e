# Sourced by scripts/test and scripts/bench: makes sure moto's KMS server,
# pinned, is installed in .venv-moto, and exports KEKD_MOTO_SERVER for the
# test harness. Expects to run from the repository root.
MOTO_VERSION=5.2.5
# The independent ML-KEM (FIPS 203) that scripts/xwing.py, the hybrid
# KEM's reference, is built on.
KYBER_PY_VERSION=1.2.0
VENV=.venv-moto

have_moto() {
  [ -x "$VENV/bin/moto_server" ] &&
    "$VENV/bin/python" -c "import sys, importlib.metadata as m; sys.exit(m.version('moto') != '$MOTO_VERSION' or m.version('kyber-py') != '$KYBER_PY_VERSION')" 2>/dev/null
}

if ! have_moto; then
  echo "installing moto[server]==$MOTO_VERSION and kyber-py==$KYBER_PY_VERSION into $VENV" >&2
  if ! python3 -m venv "$VENV"; then
    echo "'python3 -m venv' failed; on Debian: apt-get install python3-venv" >&2
    exit 1
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" "kyber-py==$KYBER_PY_VERSION"
fi
export KEKD_MOTO_SERVER="$PWD/$VENV/bin/moto_server"
