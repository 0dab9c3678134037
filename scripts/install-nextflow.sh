#!/usr/bin/env bash
# Nextflow without its download script: resolve a pinned release and its dependencies from Maven Central
# (io.nextflow:nextflow) into the cache, once per machine, and put a `nextflow` launcher in VENV/bin that
# runs it with the JVM flags Nextflow's own launcher passes (Java >= 9 needs the --add-opens, or the first
# finished task aborts the run in kryo). Offline: plugins (nf-tower, nf-weblog) are not on Maven Central.
#   install-nextflow.sh VENV [VERSION]
set -euo pipefail
venv=$1
ver=${2:-${TEMPLEARN_NEXTFLOW_VERSION:-24.10.0}}
home=${TEMPLEARN_NEXTFLOW_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/templearn/nextflow-$ver}
command -v java >/dev/null || { echo "install-nextflow: java is not on PATH (Nextflow needs Java 11-22)" >&2; exit 1; }
command -v mvn >/dev/null || { echo "install-nextflow: mvn is not on PATH (needed to resolve Nextflow from Maven Central)" >&2; exit 1; }
if [ ! -f "$home/.complete" ]; then
  mkdir -p "$home"
  cat > "$home/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>templearn</groupId><artifactId>nextflow-runtime</artifactId><version>$ver</version>
  <dependencies>
    <dependency><groupId>io.nextflow</groupId><artifactId>nextflow</artifactId><version>$ver</version></dependency>
  </dependencies>
</project>
POM
  rm -rf "$home/lib.tmp"
  (cd "$home" && mvn -q -B dependency:copy-dependencies -DoutputDirectory=lib.tmp) >&2
  rm -rf "$home/lib" && mv "$home/lib.tmp" "$home/lib" && touch "$home/.complete"
fi
opens=""
for p in java.lang java.io java.nio java.net java.util java.util.concurrent.locks java.util.concurrent.atomic \
         java.nio.file.spi sun.nio.ch sun.nio.fs sun.net.www.protocol.http sun.net.www.protocol.https \
         sun.net.www.protocol.ftp sun.net.www.protocol.file jdk.internal.misc jdk.internal.vm java.util.regex; do
  opens+=" --add-opens=java.base/$p=ALL-UNNAMED"
done
tmp=$(mktemp "$venv/bin/.nextflow.XXXXXX")
cat > "$tmp" <<LAUNCHER
#!/usr/bin/env bash
# Nextflow $ver from Maven Central (written by templearn's scripts/install-nextflow.sh).
export NXF_OFFLINE=\${NXF_OFFLINE:-true} NXF_VER=$ver
exec java \${NXF_OPTS:-} -Dfile.encoding=UTF-8 -Djava.awt.headless=true$opens -cp '$home/lib/*' nextflow.cli.Launcher "\$@"
LAUNCHER
chmod 755 "$tmp" && mv "$tmp" "$venv/bin/nextflow"
