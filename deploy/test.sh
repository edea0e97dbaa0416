#!/usr/bin/env bash
# test.sh -- what CI runs (.ci/run): dependencies, -Werror build + all tests, the same tests again
# under ASan+UBSan and under ThreadSanitizer, libFuzzer, and the clang-format check. Exits
# non-zero on the first failure.
#   PG_SKIP_ASAN=1         skip the sanitizer build (quick local runs; CI keeps it on)
#   PG_SKIP_TSAN=1         skip the ThreadSanitizer build (the same)
#   CTEST_PARALLEL_LEVEL=N ctest parallelism (default 2)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

JOBS=$(nproc 2>/dev/null || echo 2)
CTEST_J=${CTEST_PARALLEL_LEVEL:-2}
SUMMARY=()
T0=$SECONDS
T_STEP=$SECONDS

step()
{
    T_STEP=$SECONDS
    printf '\n==> %s\n' "$*"
}

# Record a finished step with its duration.
done_step()
{
    SUMMARY+=("$1 ($((SECONDS - T_STEP))s)")
}

fail()
{
    printf '\ntest.sh: FAILED: %s\n' "$*" >&2
    if [ ${#SUMMARY[@]} -gt 0 ]; then
        echo "  passed before that:" >&2
        printf '    %s\n' "${SUMMARY[@]}" >&2
    fi
    exit 1
}

step "dependencies"
"$ROOT/deploy/deps.sh" || fail "installing dependencies"
done_step dependencies

step "build (build/, -DPG_WERROR=ON)"
cmake -S . -B build -DPG_WERROR=ON || fail "configure build/"
cmake --build build -j"$JOBS" || fail "build build/"
done_step build

step "tests (build/)"
ctest --test-dir build --output-on-failure --no-tests=error -j"$CTEST_J" || fail "ctest in build/"
done_step tests

# One more build with a sanitizer, and every test again under it: skip (1 skips), label, build
# directory, cmake option; the rest are VAR=value settings for ctest.
sanitizer_pass()
{
    local skip=$1 label=$2 dir=$3 opt=$4
    shift 4
    if [ "$skip" = 1 ]; then
        step "$label: skipped"
        SUMMARY+=("$label: SKIPPED")
        return
    fi
    step "build ($dir/, -D$opt=ON)"
    cmake -S . -B "$dir" -DPG_WERROR=ON "-D$opt=ON" || fail "configure $dir/"
    cmake --build "$dir" -j"$JOBS" || fail "build $dir/"
    done_step "$label build"
    step "tests under $label ($dir/)"
    env "$@" ctest --test-dir "$dir" --output-on-failure --no-tests=error -j"$CTEST_J" ||
        fail "ctest under $label in $dir/"
    done_step "$label tests"
}

sanitizer_pass "${PG_SKIP_ASAN:-0}" "ASan+UBSan" build-asan PG_SANITIZE \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# the unit tests that race threads (shared buckets) and every integration suite against a
# gateway built with TSan running two event-loop threads (PG_TEST_WORKERS=2)
sanitizer_pass "${PG_SKIP_TSAN:-0}" ThreadSanitizer build-tsan PG_TSAN \
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 PG_TEST_WORKERS=2

step "fuzz (libFuzzer, when clang is installed)"
if command -v clang >/dev/null 2>&1; then
    cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DPG_FUZZ=ON -DPG_TESTS=ON >/dev/null ||
        fail "configure build-fuzz/"
    for t in perr h1 req conf adapters; do
        cmake --build build-fuzz -j"$JOBS" --target "fuzz_$t" || fail "build fuzz_$t"
        FUZZ_CORPUS=$(mktemp -d)
        cp "tests/fuzz/corpus/$t"/* "$FUZZ_CORPUS"/
        "build-fuzz/tests/fuzz_$t" -max_total_time="${PG_FUZZ_SECONDS:-20}" "$FUZZ_CORPUS" \
            >"build-fuzz/fuzz_$t.log" 2>&1 || {
            tail -n 40 "build-fuzz/fuzz_$t.log"
            fail "fuzz_$t found a crash (log: build-fuzz/fuzz_$t.log)"
        }
        rm -rf "$FUZZ_CORPUS"
        echo "fuzz_$t: $(tail -n 1 "build-fuzz/fuzz_$t.log")"
    done
    SUMMARY+=("fuzz")
else
    echo "clang not installed: libFuzzer run SKIPPED (the corpus replay ran in ctest)"
    SUMMARY+=("fuzz: SKIPPED")
fi

step "clang-format"
if command -v clang-format >/dev/null 2>&1; then
    mapfile -t CFILES < <(find gateway plugins tests -type f -name '*.[ch]' 2>/dev/null | sort)
    if [ ${#CFILES[@]} -eq 0 ]; then
        echo "no C files to check"
    else
        clang-format --dry-run --Werror "${CFILES[@]}" ||
            fail "clang-format (fix with: clang-format -i <files>)"
        echo "${#CFILES[@]} files formatted correctly ($(clang-format --version))"
    fi
    done_step clang-format
else
    echo "clang-format not installed: style check SKIPPED (CI must have it)"
    SUMMARY+=("clang-format: SKIPPED (not installed)")
fi

printf '\ntest.sh: OK in %ss\n' "$((SECONDS - T0))"
printf '  %s\n' "${SUMMARY[@]}"
