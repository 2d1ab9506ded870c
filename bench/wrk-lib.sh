# bench/wrk-lib.sh: helpers shared by bench/site-tls.sh and bench/ab.sh (sourced, not run).
#
# parse FILE: one line "rps p50_ms p99_ms errors" from wrk --latency output.
# emit TEXT: prints a result line and appends it to $OUT when set.

parse() {
  awk '
    function ms(v,  n) { n = v + 0
      if (v ~ /us$/) return n / 1000; if (v ~ /ms$/) return n; if (v ~ /s$/) return n * 1000; return n }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    $1 == "Requests/sec:" { rps = $2 + 0 }
    /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/ { err += $NF }
    END { printf "%.0f %.3f %.3f %d\n", rps, p50, p99, err }' "$1"
}

emit() { echo "$*"; [[ -n ${OUT:-} ]] && echo "$*" >>"$OUT"; return 0; }
