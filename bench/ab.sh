#!/usr/bin/env bash
# bench/ab.sh: A/B of Meridian variants (different binaries or configs), optionally beside
# HAProxy, in ONE session: the same nginx backends, every system started once, wrk runs
# interleaved (A B C A B C ...), medians per system. For deciding whether a change pays; the
# peer comparisons of record are ../shared/bench/site/run.sh and bench/site-tls.sh.
#
#   --mode l4|l7|tls       L4: wrk HTTP/1.1 over the TCP relays (HAProxy `mode tcp`, as in
#                          run.sh); l7: plain HTTP through the L7 listeners (HAProxy `mode
#                          http` as in run.sh); tls: wrk over HTTPS (HAProxy as in site-tls.sh)
#   --variant NAME=BIN@TPL a Meridian variant: binary and config template (repeatable); L4
#                          templates as for run.sh ({{L4_PORT}} etc.), tls ones as site-tls's
#   --haproxy              include HAProxy
#   --pin                  backends and wrk on CPU 0, every proxy on CPU 1 (less noise for
#                          comparing variants' CPU cost; the recorded peer runs are unpinned)
#   --rounds N (3) --duration S (10) --warmup S (2) --conns N (64) --out FILE
#
# Usage (from the repository root):
#   bench/ab.sh --mode l4 --haproxy --variant copy=target/release/meridian@bench/site-l4.toml.tmpl \
#     --variant splice=target/release/meridian@bench/site-l4-splice.toml.tmpl
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_SITE_DIR=${BENCH_SITE_DIR:-$(cd "$ROOT/../shared/bench/site" && pwd)}
# shellcheck source=/dev/null
source "$BENCH_SITE_DIR/backends.sh"
# shellcheck source=bench/wrk-lib.sh
source "$ROOT/bench/wrk-lib.sh"

MODE=l4 DURATION=10 ROUNDS=3 CONNS=64 WARMUP=2 OUT="" HAPROXY=0 PIN=0
declare -a VARIANTS=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --mode) MODE=$2; shift 2 ;;
    --variant) VARIANTS+=("$2"); shift 2 ;;
    --haproxy) HAPROXY=1; shift ;;
    --pin) PIN=1; shift ;;
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done
[[ $MODE == l4 || $MODE == l7 || $MODE == tls ]] || die "--mode is l4, l7 or tls"
((${#VARIANTS[@]} + HAPROXY > 0)) || die "nothing to measure"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/site-ab-bench.XXXXXX")
cleanup() { stop_all_groups; rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
cat "$TMP/cert.pem" "$TMP/key.pem" >"$TMP/haproxy.pem"
LOAD_CPUS="" PROXY_CPUS="" WRK=(wrk)
((PIN)) && LOAD_CPUS=0 PROXY_CPUS=1 WRK=(taskset -c 0 wrk)
mkdir -p "$TMP/backends"
backends_start "$TMP/backends" "$LOAD_CPUS"
quoted=""
for port in $BENCH_BACKEND_PORTS; do quoted+="${quoted:+, }\"$BENCH_HOST:$port\""; done

declare -a NAMES=() PORTS=() PGIDS=()
scheme=http
[[ $MODE == tls ]] && scheme=https

if ((HAPROXY)); then
  port=18600
  if [[ $MODE == l4 ]]; then
    bind="bind $BENCH_HOST:$port" mode="mode tcp" extra=""
  elif [[ $MODE == l7 ]]; then
    bind="bind $BENCH_HOST:$port" mode="mode http"
    extra=$'    option forwardfor\n'
  else
    bind="bind $BENCH_HOST:$port ssl crt $TMP/haproxy.pem alpn http/1.1" mode="mode http"
    extra=$'    option forwardfor\n'
  fi
  {
    printf 'global\n    nbthread 1\n    maxconn 4096\n    ssl-default-bind-options ssl-min-ver TLSv1.2\n\n'
    printf 'defaults\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n'
    printf '    timeout http-request 10s\n    timeout http-keep-alive 60s\n\n'
    printf 'frontend f\n    %s\n    %s\n%s    default_backend pool\n\n' "$mode" "$bind" "$extra"
    printf 'backend pool\n    %s\n    balance roundrobin\n' "$mode"
    if [[ $MODE != l4 ]]; then
      printf '    http-reuse always\n    option httpchk GET /health\n'
    fi
    printf '    default-server check inter 2s rise 2 fall 3\n'
    i=0
    for p in $BENCH_BACKEND_PORTS; do i=$((i + 1)); echo "    server b$i $BENCH_HOST:$p"; done
  } >"$TMP/haproxy.cfg"
  haproxy -c -q -f "$TMP/haproxy.cfg" || die "haproxy config rejected"
  start_group haproxy "$TMP/haproxy.log" "$PROXY_CPUS" haproxy -db -f "$TMP/haproxy.cfg"
  NAMES+=(haproxy) PORTS+=("$port") PGIDS+=("$STARTED_PID")
fi

i=0
for v in "${VARIANTS[@]}"; do
  i=$((i + 1))
  name=${v%%=*} rest=${v#*=}
  bin=${rest%%@*} tpl=${rest#*@}
  [[ -x $bin ]] || die "$bin missing"
  port=$((18600 + i)) l7=$((18700 + i)) l4=$((18600 + i))
  # In l7 mode wrk goes to the template's L7 listener; otherwise to its L4 (or TLS) one.
  [[ $MODE == l7 ]] && l7=$port l4=$((18700 + i))
  sed -e "s|{{HOST}}|$BENCH_HOST|g" -e "s|{{PORT}}|$port|g" -e "s|{{L4_PORT}}|$l4|g" \
    -e "s|{{L7_PORT}}|$l7|g" -e "s|{{IPERF_PORT}}|$((18800 + i))|g" \
    -e "s|{{IPERF_BACKEND}}|$BENCH_HOST:19201|g" \
    -e "s|{{CERT}}|$TMP/cert.pem|g" -e "s|{{KEY}}|$TMP/key.pem|g" \
    -e "s|{{BACKENDS_QUOTED}}|$quoted|g" "$tpl" >"$TMP/$name.toml"
  TOKIO_WORKER_THREADS=1 start_group "$name" "$TMP/$name.log" "$PROXY_CPUS" "$bin" site --config "$TMP/$name.toml"
  NAMES+=("$name") PORTS+=("$port") PGIDS+=("$STARTED_PID")
done

for k in "${!NAMES[@]}"; do
  ok=0
  for ((t = 0; t < 300; t++)); do
    if [[ $(curl -sk -o /dev/null -w '%{http_code}' "$scheme://$BENCH_HOST:${PORTS[$k]}/" 2>/dev/null) == 200 ]]; then
      ok=1
      break
    fi
    sleep 0.1
  done
  ((ok)) || die "${NAMES[$k]} not ready"
done

[[ -n $OUT ]] && : >"$OUT"
emit "INFO mode=$MODE pin=$PIN load_average_start=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ',') duration_s=$DURATION rounds=$ROUNDS conns=$CONNS"

declare -A RPS P99 CPU
for ((r = 1; r <= ROUNDS; r++)); do
  for k in "${!NAMES[@]}"; do
    sys=${NAMES[$k]} url="$scheme://$BENCH_HOST:${PORTS[$k]}/" pg=${PGIDS[$k]}
    ((WARMUP > 0)) && "${WRK[@]}" -t1 -c"$CONNS" -d"${WARMUP}s" "$url" >/dev/null 2>&1
    t0=$(group_ticks "$pg") s0=$(now_s)
    "${WRK[@]}" -t1 -c"$CONNS" -d"${DURATION}s" --latency "$url" >"$TMP/wrk-$sys-$r.txt" 2>&1 || true
    t1=$(group_ticks "$pg") s1=$(now_s)
    cpu=$(awk -v a="$t0" -v b="$t1" -v s0="$s0" -v s1="$s1" -v hz="$CLK_TCK" \
      'BEGIN { printf "%.1f", (b - a) / hz / (s1 - s0) * 100 }')
    read -r rps p50 p99 err < <(parse "$TMP/wrk-$sys-$r.txt")
    emit "RUN round=$r system=$sys rps=$rps p50_ms=$p50 p99_ms=$p99 errors=$err cpu_pct=$cpu"
    RPS[$sys]+="$rps " P99[$sys]+="$p99 " CPU[$sys]+="$cpu "
  done
done

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
first=""
for sys in "${NAMES[@]}"; do
  rps=$(median "${RPS[$sys]}") cpu=$(median "${CPU[$sys]}")
  per=$(awk -v r="$rps" -v c="$cpu" 'BEGIN { printf "%.0f", (c > 0) ? r / c * 100 : 0 }')
  [[ -z $first ]] && first=$rps
  ratio=$(awk -v a="$rps" -v b="$first" 'BEGIN { printf "%.3f", a / b }')
  emit "RESULT system=$sys rps=$rps p99_ms=$(median "${P99[$sys]}") cpu_pct=$cpu rps_per_cpu=$per rps_vs_first=$ratio"
done
emit "INFO load_average_end=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ',')"
