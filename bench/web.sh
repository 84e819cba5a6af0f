#!/usr/bin/env bash
# bench/web.sh: how long the web console's pages take to load with 1,000
# models and 100 services, side by side with nginx serving the same bytes.
#
# What it does:
#   1. builds target/release/autoglm (skipped when AUTOGLM_BIN is set);
#   2. starts `autoglm up --no-demo` on free loopback ports with a fresh home
#      under $TMPDIR; registers 1,000 models m-0001..m-1000, gives the first
#      100 a version (a small file registered by path), and deploys 100
#      services s-001..s-100 on them with 0 replicas (so the platform reports
#      on every one and no process runs);
#   3. for each page, fetches it once to check it answers 200 with what it
#      should list, writes those bytes for nginx, then loads it LOADS times
#      one after the other with curl (a fresh connection each time, the
#      session cookie of the admin's key), and the nginx copy as many times;
#   4. prints a markdown table: per page, its size, the median, p95 and
#      largest load time (curl's time_total), and the median of nginx's.
# A page load here is its HTML, which is all a browser waits for: the
# stylesheet and script are cached (max-age) and small.
#
# Usage:   bench/web.sh
# Knobs (environment): AUTOGLM_BIN=path  LOADS=50  KEEP=1
# Needs: nginx, curl, jq (`cargo xtask deps bench` installs them)
set -euo pipefail

LOADS=${LOADS:-50}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

for tool in nginx curl jq ss; do
    command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] ||
        die "$tool is missing (cargo xtask deps bench installs it)"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
autoglm_bin

UP_PID=
NGINX_PID=
bench_workdir autoglm-web-bench UP_PID NGINX_PID

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
log "machine: $(nproc) CPUs, $CPU_MODEL; $(uname -sr); load average $(cut -d' ' -f1-3 /proc/loadavg)"
log "tools: $(curl --version | head -1 | cut -d' ' -f1-2), $("$NGINX" -v 2>&1 | cut -d' ' -f3), autoglm $("$AUTOGLM_BIN" --version | cut -d' ' -f2) (tree $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown))"

# --- autoglm up --------------------------------------------------------------
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
log "starting autoglm up on $BASE (home $WORK/home)"
"$AUTOGLM_BIN" up --no-demo --nacos-addr off --home "$WORK/home" --addr "127.0.0.1:$PORT" \
    --gateway-addr "127.0.0.1:$(free_port)" >"$WORK/up.log" 2>&1 &
UP_PID=$!
wait_http "$BASE/healthz" || { cat "$WORK/up.log" >&2; die "autoglm up did not answer /healthz"; }
TOKEN=$(cat "$WORK/home/admin-token")
AUTH="Authorization: Bearer $TOKEN"

# Sends the JSON bodies of $1 (one a line) as POSTs to $2's URLs, 100 per curl
# process; prints how many were created.
post_all() { # FILE_OF "PATH BODY" LINES
    local created=0 cfg=$WORK/seed.curlrc n=0
    : >"$cfg"
    while read -r path body; do
        ((n > 0)) && echo next >>"$cfg"
        printf 'url = "%s%s"\nheader = "%s"\nheader = "Content-Type: application/json"\ndata = "%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' \
            "$BASE" "$path" "$AUTH" "${body//\"/\\\"}" >>"$cfg"
        n=$((n + 1))
        if ((n == 100)); then
            created=$((created + $(curl -s -K "$cfg" | grep -c '^201$' || true)))
            : >"$cfg"
            n=0
        fi
    done <"$1"
    ((n > 0)) && created=$((created + $(curl -s -K "$cfg" | grep -c '^201$' || true)))
    echo "$created"
}

log "registering 1,000 models, 100 versions and 100 services"
echo "tiny weights" >"$WORK/weights.bin"
for i in $(seq 1 1000); do printf '/api/v1/models {"name":"m-%04d","labels":{"team":"nlp"}}\n' "$i"; done >"$WORK/models.txt"
for i in $(seq 1 100); do printf '/api/v1/models/m-%04d/versions {"path":"%s","task":"text-generation"}\n' "$i" "$WORK/weights.bin"; done >"$WORK/versions.txt"
for i in $(seq 1 100); do
    printf '/api/v1/services {"apiVersion":"autoglm.io/v1alpha1","kind":"ModelService","metadata":{"name":"s-%03d"},"spec":{"model":"m-%04d","versions":[{"version":"1","weight":100}],"replicas":0}}\n' "$i" "$i"
done >"$WORK/services.txt"
[[ $(post_all "$WORK/models.txt") == 1000 ]] || die "not every model was created"
[[ $(post_all "$WORK/versions.txt") == 100 ]] || die "not every version was created"
[[ $(post_all "$WORK/services.txt") == 100 ]] || die "not every service was created"

# --- the pages, and nginx serving their bytes --------------------------------
COOKIE="Cookie: autoglm_session=$TOKEN"
PAGES=(/ui /ui/models /ui/models/m-0050 /ui/services/s-050 /ui/services/new /ui/keys /ui/usage /ui/audit)
# What each page must show, so a page that fails quietly cannot look fast.
EXPECT=("s-100" "m-1000" "text-generation" "AllReplicasReady\|ScaledToZero\|Ready" "m-1000" "Create key" "Usage" "services.create")
mkdir -p "$WORK/www"
for i in "${!PAGES[@]}"; do
    page=${PAGES[$i]}
    file=$WORK/www/page$i.html
    code=$(curl -s -o "$file" -w '%{http_code}' -H "$COOKIE" "$BASE$page")
    [[ $code == 200 ]] || die "$page answered $code"
    grep -q "${EXPECT[$i]}" "$file" || die "$page does not show ${EXPECT[$i]}"
done
chmod 755 "$WORK" "$WORK/www" && chmod 644 "$WORK/www/"*
NPORT=$(free_port)
cat >"$WORK/nginx.conf" <<EOF
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/tmp;
    proxy_temp_path $WORK/tmp;
    fastcgi_temp_path $WORK/tmp;
    uwsgi_temp_path $WORK/tmp;
    scgi_temp_path $WORK/tmp;
    default_type text/html;
    server { listen 127.0.0.1:$NPORT; root $WORK/www; }
}
EOF
"$NGINX" -e "$WORK/nginx-error.log" -p "$WORK" -c "$WORK/nginx.conf" -g 'daemon off;' >/dev/null 2>&1 &
NGINX_PID=$!
wait_http "http://127.0.0.1:$NPORT/page0.html" || die "nginx did not start"

# LOADS sequential loads of URL (extra curl args after it); one time_total in ms a line.
loads() {
    local url=$1
    shift
    for _ in $(seq "$LOADS"); do
        curl -s -o /dev/null -w '%{time_total}\n' "$@" "$url"
    done | awk '{ printf "%.2f\n", $1 * 1000 }'
}
pct() { sort -g | awk -v p="$1" '{ v[NR] = $1 } END { i = int(NR * p + 0.999); if (i < 1) i = 1; print v[i] }'; }

log "loading each page $LOADS times"
echo
echo "| page | size | median | p95 | largest | nginx, same bytes (median) |"
echo "|---|---|---|---|---|---|"
for i in "${!PAGES[@]}"; do
    page=${PAGES[$i]}
    loads "$BASE$page" -H "$COOKIE" >"$WORK/times$i.txt"
    loads "http://127.0.0.1:$NPORT/page$i.html" >"$WORK/nginx$i.txt"
    size=$(stat -c %s "$WORK/www/page$i.html")
    printf '| `%s` | %s KiB | %s ms | %s ms | %s ms | %s ms |\n' "$page" "$((size / 1024))" \
        "$(median <"$WORK/times$i.txt")" "$(pct 0.95 <"$WORK/times$i.txt")" \
        "$(sort -g "$WORK/times$i.txt" | tail -1)" "$(median <"$WORK/nginx$i.txt")"
done
