# mathpool_add_plugin(NAME SOURCES ...): builds an analysis plugin the way the
# worker loads it: a MODULE library with hidden visibility (only the entry point
# is exported) linked to mathpool::sdk, placed in the plugin directory.
function(mathpool_add_plugin name)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "OUTPUT_DIRECTORY" "SOURCES")
  set(sources ${ARG_SOURCES} ${ARG_UNPARSED_ARGUMENTS})
  add_library(${name} MODULE ${sources})
  target_link_libraries(${name} PRIVATE mathpool::sdk)
  set_target_properties(${name} PROPERTIES
    PREFIX "" CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIRECTORY}")
  elseif(DEFINED MATHPOOL_PLUGIN_OUTPUT_DIR)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${MATHPOOL_PLUGIN_OUTPUT_DIR}")
  endif()
endfunction()
