# ctest driver: configure, build and run the consumer against a mathpool
# package, either the build tree (MODE=build) or an installed prefix (MODE=install).
# Inputs: MODE, BUILD_DIR, SOURCE_DIR, WORK_DIR.
file(REMOVE_RECURSE "${WORK_DIR}")
if(MODE STREQUAL "install")
  execute_process(COMMAND ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix"
                  RESULT_VARIABLE rc OUTPUT_QUIET)
  if(rc)
    message(FATAL_ERROR "install failed: ${rc}")
  endif()
  set(locate "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix")
else()
  set(locate "-Dmathpool_DIR=${BUILD_DIR}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/package" -B "${WORK_DIR}/build"
                        ${locate} "-DMATHPOOL_SOURCE_DIR=${SOURCE_DIR}" RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "configuring the consumer failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build "${WORK_DIR}/build" RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "building the consumer failed: ${rc}")
endif()
if(MODE STREQUAL "install")
  # The installed command must find its installed worker and plugins.
  execute_process(COMMAND "${WORK_DIR}/prefix/bin/mathpool" plugins RESULT_VARIABLE rc
                  OUTPUT_VARIABLE listing)
  if(rc OR NOT listing MATCHES "example.echo")
    message(FATAL_ERROR "installed mathpool plugins failed (${rc}): ${listing}")
  endif()
endif()
execute_process(COMMAND "${WORK_DIR}/build/consumer_host" "${WORK_DIR}/build/consumer_plugin.so"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out)
message("${out}")
if(rc)
  message(FATAL_ERROR "consumer host failed: ${rc}")
endif()
if(NOT out MATCHES "sum 115" OR NOT out MATCHES "tasks ok 6")
  message(FATAL_ERROR "unexpected consumer output")
endif()
