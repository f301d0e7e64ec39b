#!/usr/bin/env bash
# Builds everything with AddressSanitizer and UndefinedBehaviorSanitizer and
# runs the unit and io tests and the integration tests labelled "asan"
# (tests/CMakeLists.txt: the parsers under attack, message rewriting, the
# relay's main paths; the rest ran against the release build) against that
# build, with daemons on one event loop (the plain run uses the default, one
# per CPU); then the threaded parts under ThreadSanitizer, with two loops.
set -euo pipefail
cd "$(dirname "$0")/.."
# Line tables only (-g1): all a sanitizer's report needs, and the builds
# take about a third less time than with full debug information.
debug_flags=(-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-g1" "-DCMAKE_C_FLAGS_DEBUG=-g1")
cmake -S . -B build-asan -G Ninja "${debug_flags[@]}" -DSMTPLB_SANITIZE=ON >/dev/null
ninja -C build-asan -j2
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
SMTPLB_TEST_THREADS=1 ctest --test-dir build-asan --output-on-failure -j2 --timeout 600 \
  -LE integration
SMTPLB_TEST_THREADS=1 ctest --test-dir build-asan --output-on-failure -j2 --timeout 600 -L asan

# ThreadSanitizer where threads are used: the event loops (server.threads)
# and the spool's writer threads, in the io tests and in integration tests
# against the real daemon that share pools, listeners, caches and the spool
# across loops, reload and stop (the harness fails a test whose smtplb exits
# non-zero, as TSan makes it).
cmake -S . -B build-tsan -G Ninja "${debug_flags[@]}" -DSMTPLB_TSAN=ON >/dev/null
ninja -C build-tsan -j2 smtplb io_tests
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1"
build-tsan/tests/io_tests --gtest_brief=1
export SMTPLB_TEST_THREADS=2
for test in test_balancing test_reload test_shutdown test_spool test_generations test_connection_cap \
    test_cluster test_cluster_nodes test_cluster_tls test_shared_limits test_discovery; do
    python3 tests/integration/$test.py --smtplb build-tsan/src/app/smtplb
done
