# The layout's rules that include directories cannot enforce (docs/design.md,
# "Layers"), checked over the sources under ROOT (the source tree):
# 1. no `#include "../...` in framework/ or tests/: a relative path would reach
#    a folder the layer's include directories hide (framework/src/host/config
#    including "../pool/pool_impl.hpp"); include a header by its name, from a
#    folder the target may see;
# 2. every source of framework/src/host is in a layer folder (config/,
#    process/, pool/, run/), none in host/ itself;
# 3. header names are unique under framework/src: code includes a header by
#    its name, so two of one name would depend on the include order;
# 4. the MPI module (framework/src/mpi, less mpi_job.cpp, which is the host
#    library's) sees the pool through local_pool.hpp, never pool_impl.hpp.
# Usage: cmake -DROOT=<source tree> -P check_includes.cmake
cmake_minimum_required(VERSION 3.25)
if(NOT ROOT)
  message(FATAL_ERROR "usage: cmake -DROOT=<source tree> -P check_includes.cmake")
endif()
set(problems "")

file(GLOB_RECURSE sources LIST_DIRECTORIES false
     "${ROOT}/framework/*.cpp" "${ROOT}/framework/*.hpp" "${ROOT}/framework/*.h"
     "${ROOT}/tests/*.cpp" "${ROOT}/tests/*.hpp" "${ROOT}/tests/*.h")
foreach(file IN LISTS sources)
  file(STRINGS "${file}" lines)
  set(n 0)
  foreach(line IN LISTS lines)
    math(EXPR n "${n} + 1")
    if(line MATCHES "^[ \t]*#[ \t]*include[ \t]*\"\\.\\./")
      file(RELATIVE_PATH rel "${ROOT}" "${file}")
      string(APPEND problems "${rel}:${n}: relative include across folders: ${line}\n")
    endif()
  endforeach()
endforeach()

file(GLOB stray LIST_DIRECTORIES false "${ROOT}/framework/src/host/*")
foreach(file IN LISTS stray)
  file(RELATIVE_PATH rel "${ROOT}" "${file}")
  string(APPEND problems "${rel}: not in a layer folder of framework/src/host (config, process, pool, run)\n")
endforeach()

file(GLOB_RECURSE headers LIST_DIRECTORIES false "${ROOT}/framework/src/*.hpp" "${ROOT}/framework/src/*.h")
set(seen "")
foreach(file IN LISTS headers)
  get_filename_component(name "${file}" NAME)
  file(RELATIVE_PATH rel "${ROOT}" "${file}")
  if(name IN_LIST seen)
    string(APPEND problems "${rel}: a header named ${name} exists elsewhere under framework/src\n")
  endif()
  list(APPEND seen "${name}")
endforeach()

file(GLOB mpi_sources LIST_DIRECTORIES false "${ROOT}/framework/src/mpi/*")
foreach(file IN LISTS mpi_sources)
  get_filename_component(name "${file}" NAME)
  if(name STREQUAL "mpi_job.cpp")
    continue()
  endif()
  file(STRINGS "${file}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"pool_impl\\.hpp\"")
  if(lines)
    file(RELATIVE_PATH rel "${ROOT}" "${file}")
    string(APPEND problems "${rel}: the MPI module includes pool_impl.hpp; it sees the pool through local_pool.hpp\n")
  endif()
endforeach()

if(problems)
  message(FATAL_ERROR "layout check failed (docs/design.md, \"Layers\"):\n${problems}")
endif()
list(LENGTH sources count)
message(STATUS "layout check: ${count} sources, no relative include across folders")
