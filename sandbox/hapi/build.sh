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
  echo "build.sh: missing: ${missing[*]}" >&2
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
mvn -B -q -Dstyle.color=never package -DskipTests "$@"
if [ ! -f "$JAR" ]; then
  echo "build.sh: Maven finished but $JAR is missing." >&2
  exit 1
fi
echo "build.sh: built $JAR in $(( $(date +%s) - start_s )) s."
