# Shared by deploy/demo.sh and deploy/test.sh: make sure PostgreSQL and Redis run on 127.0.0.1,
# installing them from Debian's packages on a fresh machine. Sourced, not executed.
#
# Afterwards LABEDGE_PG is a PostgreSQL URL without database name, for the role `labedge`
# (password `labedge`: a local development role, created here when missing).

set -euo pipefail

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "run as root (needs: $*)"; fi
}

apt_install() {
  log "installing $* from Debian's packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
redis_up() { [ "$( (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && timeout 2 head -c 5 <&3) 2>/dev/null)" = "+PONG" ]; }

wait_for() { # name, test command
  local name=$1; shift
  for _ in $(seq 1 60); do "$@" && return 0; sleep 0.5; done
  die "$name did not come up on 127.0.0.1"
}

ensure_postgres() {
  if ! pg_up; then
    if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
      apt_install postgresql postgresql-client
    fi
    local version
    version=$(ls /etc/postgresql | sort -n | tail -1)
    log "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || as_root pg_ctlcluster "$version" main start
    wait_for PostgreSQL pg_up
  fi
  command -v psql >/dev/null || apt_install postgresql-client
  # The role the demo and the tests use. Trust-authenticated servers ignore the password;
  # a stock Debian server (scram for TCP) needs it.
  local create="DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'labedge') THEN
      CREATE ROLE labedge LOGIN SUPERUSER PASSWORD 'labedge'; END IF; END \$\$;"
  if ! psql -q -h 127.0.0.1 -U labedge -d postgres -c 'SELECT 1' >/dev/null 2>&1 </dev/null; then
    PGPASSWORD=labedge psql -q -h 127.0.0.1 -U labedge -d postgres -c 'SELECT 1' >/dev/null 2>&1 </dev/null ||
      psql -q -h 127.0.0.1 -U postgres -d postgres -c "$create" >/dev/null 2>&1 </dev/null ||
      as_root runuser -u postgres -- psql -q -d postgres -c "$create" >/dev/null </dev/null ||
      die "cannot create the PostgreSQL role labedge"
  fi
  export LABEDGE_PG="postgres://labedge:labedge@127.0.0.1:5432"
}

ensure_redis() {
  if ! redis_up; then
    command -v redis-server >/dev/null || apt_install redis-server
    log "starting Redis"
    as_root mkdir -p /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/labedge.log
    wait_for Redis redis_up
  fi
}

ensure_rust() {
  command -v cargo >/dev/null || die "Rust is needed: https://rustup.rs (cargo not found)"
  # Crates that build C (ring) need a C compiler.
  command -v cc >/dev/null || apt_install build-essential
  # The gateway reads the lab's time zone from the system's tz database, as PostgreSQL does.
  [ -d /usr/share/zoneinfo ] || apt_install tzdata
}

# The dependency gate of .ci/run: unused dependencies (cargo-machete) and the licences, bans and
# sources of the tree (cargo-deny, configured by deny.toml). Built from crates.io when absent (a few
# minutes, once per machine); pinned so that every machine judges alike.
ensure_lint_tools() {
  command -v cargo-machete >/dev/null || {
    log "installing cargo-machete (crates.io)"
    cargo install --locked --quiet cargo-machete@0.9.2
  }
  command -v cargo-deny >/dev/null || {
    log "installing cargo-deny (crates.io)"
    cargo install --locked --quiet cargo-deny@0.20.2
  }
}

# What the deployment, continuity and browser tests drive for real: nftables and WireGuard tools
# (network namespaces), HAProxy (config check), headless Chromium with playwright-core (admin console),
# Prometheus' promtool (rules and scrape config check), rsyslog with its TLS driver (the SIEM drop-in,
# validated and run by tests/tests/it/monitoring.rs).
ensure_test_tools() {
  local missing=()
  command -v nft >/dev/null || missing+=(nftables)
  command -v wg >/dev/null || missing+=(wireguard-tools)
  command -v haproxy >/dev/null || missing+=(haproxy)
  command -v chromium >/dev/null || missing+=(chromium)
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v rsyslogd >/dev/null || missing+=(rsyslog)
  compgen -G '/usr/lib/*/rsyslog/lmnsd_gtls.so' >/dev/null || missing+=(rsyslog-gnutls)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v npm >/dev/null || missing+=(nodejs npm)
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
  # schemathesis for tests/tests/it/fuzz.rs, pinned in tests/fuzz/requirements.txt, in a git-ignored venv.
  local venv=target/schemathesis-venv
  if ! cmp -s tests/fuzz/requirements.txt "$venv/requirements.installed"; then
    log "installing schemathesis (tests/fuzz/requirements.txt) into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/fuzz/requirements.txt
    cp tests/fuzz/requirements.txt "$venv/requirements.installed"
  fi
  # fhirpy and fhir.resources for tests/tests/it/fhir_loop.rs (the LIS side), pinned in
  # tests/fhir/requirements.txt, in a venv of their own (fhir.resources' R4 models need pydantic 1).
  venv=target/fhir-venv
  if ! cmp -s tests/fhir/requirements.txt "$venv/requirements.installed"; then
    log "installing fhirpy and fhir.resources (tests/fhir/requirements.txt) into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/fhir/requirements.txt
    cp tests/fhir/requirements.txt "$venv/requirements.installed"
  fi
  if [ ! -f tests/browser/node_modules/playwright-core/package.json ]; then
    log "installing the browser test driver (npm ci in tests/browser)"
    npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error >/dev/null
  fi
}
