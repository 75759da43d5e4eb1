#!/usr/bin/env bash
# A clean install as a new user does it: build the wheel, install it into a fresh virtual env (dependencies
# from the package index), then time `llmvqa --help` and run a cold and a warm `llmvqa rate --json` from
# another directory. Prints the install time, the env's size and what each command wrote.
#
#   bash eval/bench_install.sh [WORKDIR]        # default: a temporary folder, removed afterwards
#   CPU_TORCH=1 bash eval/bench_install.sh      # torch's CPU build first, as scripts/setup.sh does without CUDA
#                                               # (plain pip takes the CUDA build from PyPI: several GB more)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${1:-$(mktemp -d)}"
KEEP="${1:+yes}"
PY="${PYTHON:-python3}"
mkdir -p "$WORK"
t0=$(date +%s.%N)
"$PY" -m pip wheel --no-deps -q -w "$WORK/dist" . >/dev/null
t1=$(date +%s.%N)
"$PY" -m venv "$WORK/venv"
if [ -n "${CPU_TORCH:-}" ]; then
  "$WORK/venv/bin/pip" install -q "torch==2.13.0+cpu" 2>/dev/null \
    || "$WORK/venv/bin/pip" install -q "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
fi
"$WORK/venv/bin/pip" install -q "$WORK"/dist/llmvqa-*.whl
t2=$(date +%s.%N)
echo "wheel build: $(printf '%.1f' "$(echo "$t1 - $t0" | bc)") s; size $(du -h "$WORK"/dist/llmvqa-*.whl | cut -f1)"
echo "pip install into a clean venv${CPU_TORCH:+ (CPU torch first)}: $(printf '%.1f' "$(echo "$t2 - $t1" | bc)") s; venv size $(du -sh "$WORK/venv" | cut -f1)"
cd "$WORK"
for i in 1 2 3; do
  s=$(date +%s.%N); "$WORK/venv/bin/llmvqa" --help >/dev/null; e=$(date +%s.%N)
  echo "llmvqa --help run $i: $(printf '%.2f' "$(echo "$e - $s" | bc)") s"
done
for run in cold warm; do
  s=$(date +%s.%N)
  "$WORK/venv/bin/llmvqa" rate example:bikes --json --no-explain >"$WORK/rate_$run.json" 2>"$WORK/rate_$run.err"
  e=$(date +%s.%N)
  echo "llmvqa rate example:bikes --json --no-explain ($run): $(printf '%.1f' "$(echo "$e - $s" | bc)") s; stdout $(wc -c <"$WORK/rate_$run.json") bytes, valid JSON: $("$WORK/venv/bin/python" -c "import json,sys; json.load(open(sys.argv[1])); print('yes')" "$WORK/rate_$run.json" 2>/dev/null || echo no); stderr $(wc -c <"$WORK/rate_$run.err") bytes"
done
head -c 400 "$WORK/rate_warm.json"; echo " …"
[ -n "$KEEP" ] || rm -rf "$WORK"
