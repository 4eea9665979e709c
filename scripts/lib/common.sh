# shellcheck shell=bash
# Sourced by the stack scripts: output, process and polling helpers shared by every service.

say() { printf '%s\n' "$*"; }
fail() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# `host:port` of the first entry of a comma-separated broker list or of a URL's authority.
first_broker() { printf '%s' "${1%%,*}"; }
url_authority() {
  local rest="${1#*://}"
  rest="${rest%%/*}"
  printf '%s' "${rest##*@}"
}
# A URL as the status lines and stamps show it: its password (after the user, up to the last
# `@`, since an unencoded one may hold `/`, `?` or `@`; or a `password=` parameter) as ***.
url_redacted() {
  local url="$1" rest userinfo
  if [[ "$url" == *://*@* ]]; then
    rest="${url#*://}"
    userinfo="${rest%@*}"
    [[ "$userinfo" == *:* ]] && url="${url%%://*}://${userinfo%%:*}:***@${rest##*@}"
  fi
  sed -E 's/([?&]password=)[^&]*/\1***/g' <<<"$url"
}
host_of() { printf '%s' "${1%:*}"; }
port_of() { printf '%s' "${1##*:}"; }

is_local_host() { [[ "$1" == 127.0.0.1 || "$1" == localhost || "$1" == '[::1]' ]]; }

# Bash's /dev/tcp keeps the warm path free of extra processes.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# A pid file only counts while its process still runs the program we started (pids get reused).
pid_from_file() {
  local file="$1" marker="$2" pid
  [[ -f "$file" ]] || return 1
  pid="$(<"$file")"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker" || return 1
  printf '%s' "$pid"
}

# wait_until SERVICE LOG PID CHECK...: polls CHECK until it succeeds, printing progress; gives up
# when PID (if given) exits or after TALLY_STACK_TIMEOUT_SECONDS, naming the service and its log.
wait_until() {
  local service="$1" log="$2" pid="$3"
  shift 3
  local start=$SECONDS next_report=$((SECONDS + 5))
  until "$@"; do
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      fail "$service exited while starting; see its log: $log"
    fi
    if ((SECONDS - start >= TALLY_STACK_TIMEOUT_SECONDS)); then
      fail "$service did not come up within ${TALLY_STACK_TIMEOUT_SECONDS}s; see its log: $log"
    fi
    if ((SECONDS >= next_report)); then
      say "  … still waiting for $service ($((SECONDS - start))s)"
      next_report=$((SECONDS + 5))
    fi
    sleep 0.5
  done
}

# Stops a process we started: SIGTERM lets Kafka close its logs cleanly; SIGKILL after 60 s.
stop_pid() {
  local service="$1" pid="$2" waited=0
  kill "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do
    if ((waited >= 600)); then
      say "  $service did not stop in 60s; killing it"
      kill -9 "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
}

# Installs Debian packages, only ever called when a needed program is missing. A package's
# postinst may start its daemon (redis-server, postgresql): it must not inherit fd 9, the stack lock.
apt_install() {
  say "  installing $* from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 9>&-
}

# Extracts promtool from Debian's prometheus package (downloaded, never installed) to $1.
install_promtool() {
  local target="$1" work
  say "  taking promtool from Debian's prometheus package"
  work="$(mktemp -d)"
  # apt-get download needs the package lists; a fresh machine may have none yet.
  if ! (cd "$work" && apt-get download -qq prometheus >/dev/null 2>&1); then
    apt-get update -qq
    (cd "$work" && apt-get download -qq prometheus >/dev/null 2>&1) || fail "could not download Debian's prometheus package"
  fi
  dpkg-deb --fsys-tarfile "$work"/prometheus_*.deb | tar -x -C "$work" ./usr/bin/promtool
  mkdir -p "$(dirname "$target")"
  mv "$work/usr/bin/promtool" "$target"
  rm -rf "$work"
}

# The Maven invocation shared by Kafka and the registry: batch mode, quiet, pinned plugin.
mvn_copy_dependencies() {
  local pom="$1" out="$2" log="$3"
  if ! mvn -B -q -f "$pom" \
    org.apache.maven.plugins:maven-dependency-plugin:3.9.0:copy-dependencies \
    -DoutputDirectory="$out" -DincludeScope=runtime -Dstyle.color=never >"$log" 2>&1; then
    fail "Maven could not resolve $pom; see $log"
  fi
}

# Re-resolves when the POM changes, so a version bump in infra/ takes effect without manual cleanup.
stamp_matches() { [[ -f "$1" && "$(<"$1")" == "$2" ]]; }
file_digest() { sha256sum "$1" | cut -d' ' -f1; }
