#!/usr/bin/env bash
# Make the local services what the integration tests need, idempotently:
# PostgreSQL with logical decoding, MariaDB with a row-based binlog and
# GTIDs, Redis running. Safe to run again: a service is restarted only when
# its settings change.
set -euo pipefail

port_open() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }
wait_port() { for _ in $(seq 1 150); do port_open "$1" && return 0; sleep 0.2; done; echo "port $1 did not open" >&2; return 1; }

# Redis: started before CI on these machines; start it if it is down.
if ! port_open 6379; then
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 6379
fi

# PostgreSQL: logical replication for postgres-cdc.
pgver=$(ls /etc/postgresql | sort -n | tail -1)
if ! port_open 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$pgver" main start
  wait_port 5432
fi
pgset() { psql -h 127.0.0.1 -U postgres -Atqc "$1" postgres; }
if [ "$(pgset 'show wal_level')" != logical ] || [ "$(pgset 'show max_replication_slots')" -lt 64 ] || [ "$(pgset 'show max_wal_senders')" -lt 64 ]; then
  pgset "ALTER SYSTEM SET wal_level = logical"
  pgset "ALTER SYSTEM SET max_replication_slots = 64"
  pgset "ALTER SYSTEM SET max_wal_senders = 64"
  pg_ctlcluster --skip-systemctl-redirect "$pgver" main restart
  wait_port 5432
  until pg_isready -h 127.0.0.1 -q; do sleep 0.2; done
fi
# Replication slots left behind by test runs that were killed (a slot outlives
# its test process and holds WAL and a max_replication_slots entry until it is
# dropped). Only inactive slots of the tests' own database are dropped.
pgset "SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE database = 'test' AND NOT active" >/dev/null

# MariaDB: row-based binlog with full images and GTIDs for mysql-cdc.
cnf=/etc/mysql/my.cnf
if ! grep -q '^# rivven-connect: binlog' "$cnf"; then
  cat >>"$cnf" <<'CNF'
# rivven-connect: binlog for mysql-cdc tests
[mysqld]
server_id = 1
log_bin = /var/lib/mysql/mariadb-bin
binlog_format = ROW
binlog_row_image = FULL
binlog_row_metadata = FULL
expire_logs_days = 1
CNF
fi
mysql_ok() { mariadb -h 127.0.0.1 -uroot -N -e "$1" 2>/dev/null; }
if [ "$(mysql_ok 'select @@log_bin, @@binlog_format' || true)" != "$(printf '1\tROW')" ]; then
  if port_open 3306; then
    mariadb-admin -h 127.0.0.1 -uroot shutdown || true
  fi
  # The port closes before the server has exited; wait for the process.
  for _ in $(seq 1 300); do pgrep -x mariadbd >/dev/null || break; sleep 0.2; done
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_port 3306
fi

# npm packages the tests use, pinned by .ci/node/package-lock.json: Azurite,
# the Azure Blob emulator the object-storage tests start, hyparquet, the
# independent Parquet reader, icebird, the independent Iceberg reader, and
# playwright-core, which drives Chromium through the dashboard's browser
# test. npm ci runs again whenever the lock file is not the one the
# installed tree came from (a package added or bumped).
node_dir="$(dirname "$0")/node"
if ! cmp -s "$node_dir/package-lock.json" "$node_dir/node_modules/.rivven-installed-lock.json"; then
  npm ci --prefix "$node_dir" --no-audit --no-fund --loglevel=error
  cp "$node_dir/package-lock.json" "$node_dir/node_modules/.rivven-installed-lock.json"
fi

# ClickHouse: Debian's clickhouse-server (18.16) for the clickhouse sink's
# tests, HTTP on 8123. Installed once (dpkg -s answers fast when it is);
# started as its systemd unit would (user clickhouse, the package's
# config) but as a background daemon, since CI has no systemd.
if ! dpkg -s clickhouse-server >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server >/dev/null
fi
if ! port_open 8123; then
  start-stop-daemon --start --oknodo --background --chuid clickhouse \
    --exec /usr/sbin/clickhouse-server -- --config=/etc/clickhouse-server/config.xml
  wait_port 8123
fi

# Chromium: Debian's package, the headless browser the dashboard's browser
# test drives through playwright-core (which downloads no browser of its
# own). Installed once.
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
