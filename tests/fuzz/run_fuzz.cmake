# ctest driver: builds the fuzz targets with clang and runs TARGET for SECONDS.
# Inputs: SOURCE_DIR, WORK_DIR, TARGET, SECONDS.
find_program(CLANGXX NAMES clang++ clang++-14)
if(NOT CLANGXX)
  message(FATAL_ERROR "clang++ is needed for the fuzz tests (Debian: clang, libclang-rt-14-dev)")
endif()
if(NOT EXISTS "${WORK_DIR}/build/CMakeCache.txt")
  execute_process(COMMAND ${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/fuzz" -B "${WORK_DIR}/build"
                          -DCMAKE_CXX_COMPILER=${CLANGXX} -DMATHPOOL_SOURCE_DIR=${SOURCE_DIR}
                          -DCMAKE_BUILD_TYPE=Debug RESULT_VARIABLE rc OUTPUT_QUIET)
  if(rc)
    message(FATAL_ERROR "configuring the fuzz targets failed: ${rc}")
  endif()
endif()
# Always (incrementally) built, so the target fuzzes the current sources.
execute_process(COMMAND ${CMAKE_COMMAND} --build "${WORK_DIR}/build" --target ${TARGET}
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "building ${TARGET} failed: ${rc}")
endif()
# A fresh corpus every run, grown from the seeds: one kept across runs grew to
# thousands of inputs, and loading them alone took the fuzzer (with its
# sanitizer's bookkeeping) past the RSS limit meant for a single input.
file(REMOVE_RECURSE "${WORK_DIR}/corpus-${TARGET}")
file(MAKE_DIRECTORY "${WORK_DIR}/corpus-${TARGET}")
file(GLOB seeds "${SOURCE_DIR}/tests/fuzz/seeds-${TARGET}/*")
# Per-input limits: an input that takes seconds or hundreds of megabytes (an
# alias bomb, say) is a finding, reported as such, not an OOM kill of ctest.
# The config loader must stay small and fast on any text; the channel may
# legitimately buffer a frame of up to 256 MiB, so its limit is higher.
if("${TARGET}" STREQUAL "fuzz_config")
  # max_len leaves room for huge scalars and deep nesting beyond the seeds'.
  set(limits -timeout=5 -rss_limit_mb=512 -malloc_limit_mb=256 -max_len=20000
             -dict=${SOURCE_DIR}/tests/fuzz/fuzz_config.dict)
else()
  set(limits -timeout=10 -rss_limit_mb=2048)
endif()
# ASan keeps freed memory in a quarantine (256 MiB by default) that counts in
# the process's RSS: over a minute of inputs it alone took fuzz_config past
# its 512 MB limit (live heap 27 MB, quarantine 232 MB). A smaller quarantine
# lets the RSS limit measure the code under test; malloc_limit_mb still
# catches any one input's large allocation.
execute_process(COMMAND ${CMAKE_COMMAND} -E env "ASAN_OPTIONS=quarantine_size_mb=32"
                        "${WORK_DIR}/build/${TARGET}" -max_total_time=${SECONDS} ${limits}
                        "${WORK_DIR}/corpus-${TARGET}"
                        "${SOURCE_DIR}/tests/fuzz/seeds-${TARGET}"
                WORKING_DIRECTORY "${WORK_DIR}" RESULT_VARIABLE rc ERROR_VARIABLE log)
string(REGEX MATCH "Done [0-9]+ runs[^\n]*" summary "${log}")
message("${TARGET}: ${summary}")
if(rc)
  message(FATAL_ERROR "${TARGET} found a failure (${rc}):\n${log}")
endif()
