#!/usr/bin/env bash
# Fuzzes the public API from its own document: starts `troupe up` (debug build, free ports, a
# temp data dir), runs schemathesis against /openapi.json, stops the cluster with Ctrl-C
# (SIGINT) and exits non-zero on any finding: a 5xx the contracts do not ask for (see
# schemathesis.toml), a status, body or Content-Type the document does not state, a request
# that hangs, a panic in the cluster's log, or a cluster that does not stop cleanly.
#
#   bash tests/schemathesis/run.sh                     # 100 examples per operation
#   ST_MAX_EXAMPLES=300 ST_SEED=42 bash tests/schemathesis/run.sh
#
# TROUPE_BIN: a troupe binary to use instead of building one. Not part of .ci/run (it needs
# PyPI and takes a minute or two).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target=$root/$target ;; esac
venv=$target/schemathesis-venv
report=$target/schemathesis-report
max_examples=${ST_MAX_EXAMPLES:-100}

if [[ -z ${TROUPE_BIN:-} ]]; then
    cargo build -q -p troupe-nodes --bin troupe
    TROUPE_BIN=$target/debug/troupe
fi

if [[ ! -x $venv/bin/schemathesis ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'schemathesis>=4,<5'
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
http_port=$(free_port)
internal_port=$(free_port)
while [[ $internal_port == "$http_port" ]]; do internal_port=$(free_port); done
base=http://127.0.0.1:$http_port

work=$(mktemp -d "${TMPDIR:-/tmp}/troupe-schemathesis.XXXXXX")
log=$work/up.log
# Job control: the cluster gets its own process group and does not ignore SIGINT.
set -m
"$TROUPE_BIN" up --nodes 3 --http "127.0.0.1:$http_port" \
    --internal-http "127.0.0.1:$internal_port" --data "$work/data" >"$log" 2>&1 &
up_pid=$!
set +m

stopped=0
stop_cluster() {
    [[ $stopped == 1 ]] && return 0
    stopped=1
    kill -INT "$up_pid" 2>/dev/null || return 0
    for _ in $(seq 60); do
        kill -0 "$up_pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$up_pid" 2>/dev/null; then
        echo "troupe up did not stop within 30 s of SIGINT; killing it" >&2
        kill -KILL -- "-$up_pid" 2>/dev/null || true
        return 1
    fi
}
cleanup() {
    stop_cluster || true
    rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 120); do
    if curl -sf "$base/readyz" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$up_pid" 2>/dev/null; then
        echo "troupe up exited before the cluster was ready:" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
    sleep 0.5
done
curl -sf "$base/readyz" >/dev/null || { echo "cluster not ready after 60 s" >&2; tail -n 40 "$log" >&2; exit 1; }

seed_args=()
[[ -n ${ST_SEED:-} ]] && seed_args=(--seed "$ST_SEED")
rm -rf "$report"
status=0
# From the target dir, where schemathesis keeps its crash cache (.schemathesis/) for `st replay`.
(cd "$target" && "$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" run "$base/openapi.json" \
    --checks not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance \
    --max-examples "$max_examples" --workers 2 --request-timeout 60 \
    --generation-database none --no-color \
    --report junit,har --report-dir "$report" "${seed_args[@]}") || status=$?

if ! kill -0 "$up_pid" 2>/dev/null; then
    echo "FINDING: troupe up exited during the run" >&2
    status=1
fi
if ! stop_cluster; then
    status=1
else
    wait "$up_pid" && up_status=0 || up_status=$?
    if [[ $up_status != 0 ]]; then
        echo "FINDING: troupe up exited with $up_status after SIGINT" >&2
        status=1
    fi
fi
if grep -n "panicked" "$log" >&2; then
    echo "FINDING: a panic in the cluster's log (above)" >&2
    status=1
fi
if [[ $status != 0 ]]; then
    mkdir -p "$report" && cp "$log" "$report/up.log"
    echo "schemathesis run failed; reports and the cluster's log are in $report" >&2
fi
exit "$status"
