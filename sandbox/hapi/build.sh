#!/usr/bin/env bash
# build.sh - builds the iop-bridge HAPI FHIR R4 sandbox server into target/iop-hapi-sandbox.jar.
# Needs Java >= 17 and Maven (Debian: apt-get install openjdk-17-jdk-headless maven).
# Skips the build when the jar is newer than pom.xml and every file under src/.
# Set HAPI_FORCE_BUILD=1 to rebuild anyway; extra arguments are passed to mvn.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
JAR="$HERE/target/iop-hapi-sandbox.jar"
INSTALL_HINT="On Debian/Ubuntu: apt-get install -y openjdk-17-jdk-headless maven"

missing=()
if ! command -v java >/dev/null 2>&1; then
  missing+=("java (JDK 17 or newer)")
fi
if ! command -v mvn >/dev/null 2>&1; then
  missing+=("mvn (Apache Maven)")
fi
if [ "${#missing[@]}" -gt 0 ]; then
  list=""
  for m in "${missing[@]}"; do list="${list:+$list, }$m"; done
  echo "build.sh: missing: $list" >&2
  echo "build.sh: $INSTALL_HINT" >&2
  exit 1
fi

# "17.0.15" -> 17, "1.8.0_392" -> 8
java_version_line="$(java -version 2>&1 | head -n 1)"
java_major="$(printf '%s\n' "$java_version_line" | sed -E 's/.*version "([0-9]+)(\.([0-9]+))?.*/\1 \3/' | awk '{ if ($1 == 1) print $2; else print $1 }')"
if ! [[ "$java_major" =~ ^[0-9]+$ ]] || [ "$java_major" -lt 17 ]; then
  echo "build.sh: Java 17 or newer is required, found: $java_version_line" >&2
  echo "build.sh: $INSTALL_HINT" >&2
  exit 1
fi
if ! command -v javac >/dev/null 2>&1; then
  echo "build.sh: javac not found: a JDK (not only a JRE) is required." >&2
  echo "build.sh: $INSTALL_HINT" >&2
  exit 1
fi

if [ "${HAPI_FORCE_BUILD:-0}" != "1" ] && [ -f "$JAR" ]; then
  newer="$(find "$HERE/pom.xml" "$HERE/src" -newer "$JAR" -print -quit)"
  if [ -z "$newer" ]; then
    echo "build.sh: $JAR is up to date, skipping the build."
    exit 0
  fi
fi

echo "build.sh: building $JAR (the first build downloads ~350 MB of dependencies into ~/.m2) ..."
start_s=$(date +%s)
cd "$HERE"

# Servers that are running keep reading their jar. maven-jar-plugin would overwrite the file in place
# (same inode) and break them, so the old jar is first renamed aside (rename keeps the inode that
# running JVMs hold open) and unlinked after the build; on failure it is put back.
PREV_JAR="$JAR.prev.$$"
restore_prev() {
  if [ -f "$PREV_JAR" ]; then
    rm -f "$JAR"
    mv -f "$PREV_JAR" "$JAR"
  fi
}
trap 'restore_prev; exit 130' INT TERM
if [ -f "$JAR" ]; then
  mv -f "$JAR" "$PREV_JAR"
fi
# Debian's Maven 3.8 prints stray ANSI colour resets even in batch mode; strip them (pipefail keeps
# Maven's exit status).
run_mvn() {
  mvn -B -Dstyle.color=never "$@" 2>&1 | sed -u 's/\x1b\[[0-9;]*m//g'
}

if ! run_mvn -q package -DskipTests "$@"; then
  # a second, verbose attempt: survives a transient download error and shows the full log otherwise
  echo "build.sh: the quiet build failed; retrying once with full Maven output ..." >&2
  if ! run_mvn package -DskipTests "$@"; then
    echo "build.sh: Maven build failed (see above). Maven Central must be reachable for the first build." >&2
    restore_prev
    exit 1
  fi
fi
if [ ! -f "$JAR" ]; then
  echo "build.sh: Maven finished but $JAR is missing." >&2
  restore_prev
  exit 1
fi
rm -f "$PREV_JAR"
echo "build.sh: built $JAR in $(( $(date +%s) - start_s )) s."
