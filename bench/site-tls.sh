#!/usr/bin/env bash
# bench/site-tls.sh: Meridian and HAProxy, both terminating TLS, on loopback, in one run.
#
# ../shared/bench/site/run.sh speaks plain HTTP only, so this script reuses its backends
# (backends.sh: one nginx, three ports) and helpers (lib.sh: process groups, CPU accounting)
# and measures the TLS listeners the same way: wrk -t1 -c64 --latency over HTTPS (keep-alive,
# so handshakes happen once per connection), an unmeasured warm-up before each measured run,
# interleaved rounds (haproxy, meridian, haproxy, ...), medians, CPU of each proxy's process
# group. Both get the same ECDSA P-256 certificate made for the run, both offer TLS 1.2/1.3
# (wrk negotiates TLS 1.3), one thread each, round robin, active HTTP checks every 2 s.
#
# Usage (from the repository root, after cargo build --release):
#   bench/site-tls.sh [--duration S] [--rounds N] [--conns N] [--warmup S] [--out FILE]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_SITE_DIR=${BENCH_SITE_DIR:-$(cd "$ROOT/../shared/bench/site" && pwd)}
# shellcheck source=/dev/null
source "$BENCH_SITE_DIR/backends.sh"
# shellcheck source=bench/wrk-lib.sh
source "$ROOT/bench/wrk-lib.sh"

DURATION=15 ROUNDS=3 CONNS=64 WARMUP=2 OUT=""
HAPROXY_PORT=${HAPROXY_TLS_PORT:-18443} MERIDIAN_PORT=${MERIDIAN_TLS_PORT:-18444}
MERIDIAN=${MERIDIAN_BIN:-$ROOT/target/release/meridian}
while [[ $# -gt 0 ]]; do
  case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done
[[ -x $MERIDIAN ]] || die "$MERIDIAN missing: cargo build --release"
for p in $HAPROXY_PORT $MERIDIAN_PORT; do port_in_use "$p" && die "port $p is in use"; done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/site-tls-bench.XXXXXX")
cleanup() { stop_all_groups; rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# A throwaway certificate for this run only.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
cat "$TMP/cert.pem" "$TMP/key.pem" >"$TMP/haproxy.pem"

mkdir -p "$TMP/backends"
backends_start "$TMP/backends"

quoted=""
for port in $BENCH_BACKEND_PORTS; do quoted+="${quoted:+, }\"$BENCH_HOST:$port\""; done

{
  cat <<CONF
global
    nbthread 1
    maxconn 4096
    ssl-default-bind-options ssl-min-ver TLSv1.2

defaults
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 60s

frontend tls
    mode http
    bind $BENCH_HOST:$HAPROXY_PORT ssl crt $TMP/haproxy.pem alpn http/1.1
    option forwardfor
    default_backend pool

backend pool
    mode http
    balance roundrobin
    http-reuse always
    option httpchk GET /health
    default-server check inter 2s rise 2 fall 3
CONF
  i=0
  for port in $BENCH_BACKEND_PORTS; do i=$((i + 1)); echo "    server b$i $BENCH_HOST:$port"; done
} >"$TMP/haproxy.cfg"
haproxy -c -q -f "$TMP/haproxy.cfg" || die "haproxy config rejected"
start_group haproxy "$TMP/haproxy.log" "" haproxy -db -f "$TMP/haproxy.cfg"
HAPROXY_PID=$STARTED_PID

sed -e "s|{{HOST}}|$BENCH_HOST|g" -e "s|{{PORT}}|$MERIDIAN_PORT|g" \
  -e "s|{{CERT}}|$TMP/cert.pem|g" -e "s|{{KEY}}|$TMP/key.pem|g" \
  -e "s|{{BACKENDS_QUOTED}}|$quoted|g" "$ROOT/bench/site-tls.toml.tmpl" >"$TMP/meridian.toml"
TOKIO_WORKER_THREADS=1 start_group meridian "$TMP/meridian.log" "" \
  "$MERIDIAN" site --config "$TMP/meridian.toml"
MERIDIAN_PID=$STARTED_PID

ready() {
  local port=$1 i
  for ((i = 0; i < 300; i++)); do
    [[ $(curl -sk -o /dev/null -w '%{http_code}' "https://$BENCH_HOST:$port/" 2>/dev/null) == 200 ]] && return 0
    sleep 0.1
  done
  return 1
}
ready "$HAPROXY_PORT" || die "haproxy not ready: $(tail -5 "$TMP/haproxy.log")"
ready "$MERIDIAN_PORT" || die "meridian not ready: $(tail -5 "$TMP/meridian.log")"

cipher() {
  openssl s_client -connect "$BENCH_HOST:$1" -servername localhost </dev/null 2>/dev/null |
    awk '/^New, /{ sub(/,$/, "", $2); print $2 "/" $NF; exit }'
}
log "negotiated: haproxy $(cipher "$HAPROXY_PORT"), meridian $(cipher "$MERIDIAN_PORT")"

[[ -n $OUT ]] && : >"$OUT"
emit "INFO load_average_start=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ',') duration_s=$DURATION rounds=$ROUNDS conns=$CONNS"

declare -A RPS P50 P99 CPU
for ((r = 1; r <= ROUNDS; r++)); do
  for sys in haproxy meridian; do
    if [[ $sys == haproxy ]]; then port=$HAPROXY_PORT pg=$HAPROXY_PID; else port=$MERIDIAN_PORT pg=$MERIDIAN_PID; fi
    url="https://$BENCH_HOST:$port/"
    ((WARMUP > 0)) && wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$url" >/dev/null 2>&1
    t0=$(group_ticks "$pg") s0=$(now_s)
    wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$url" >"$TMP/wrk-$sys-$r.txt" 2>&1 || true
    t1=$(group_ticks "$pg") s1=$(now_s)
    cpu=$(awk -v a="$t0" -v b="$t1" -v s0="$s0" -v s1="$s1" -v hz="$CLK_TCK" \
      'BEGIN { printf "%.1f", (b - a) / hz / (s1 - s0) * 100 }')
    read -r rps p50 p99 err < <(parse "$TMP/wrk-$sys-$r.txt")
    emit "RUN round=$r system=$sys rps=$rps p50_ms=$p50 p99_ms=$p99 errors=$err cpu_pct=$cpu"
    RPS[$sys]+="$rps " P50[$sys]+="$p50 " P99[$sys]+="$p99 " CPU[$sys]+="$cpu "
  done
done

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for sys in haproxy meridian; do
  rps=$(median "${RPS[$sys]}") cpu=$(median "${CPU[$sys]}")
  per=$(awk -v r="$rps" -v c="$cpu" 'BEGIN { printf "%.0f", (c > 0) ? r / c * 100 : 0 }')
  emit "RESULT system=$sys rps=$rps p50_ms=$(median "${P50[$sys]}") p99_ms=$(median "${P99[$sys]}") cpu_pct=$cpu rps_per_cpu=$per"
  eval "M_RPS_$sys=$rps M_P99_$sys=$(median "${P99[$sys]}") M_PER_$sys=$per"
done
emit "$(awk -v a="$M_RPS_meridian" -v b="$M_RPS_haproxy" -v c="$M_P99_meridian" -v d="$M_P99_haproxy" \
  -v e="$M_PER_meridian" -v f="$M_PER_haproxy" \
  'BEGIN { printf "RATIO system=meridian vs=haproxy rps=%.3f p99=%.3f rps_per_cpu=%.3f", a / b, c / d, e / f }')"
emit "INFO load_average_end=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ',')"
