# prefork_add_layer(TARGET EXPORT_NAME SOURCES...): one layer of the library,
# laid out the same way in every folder:
#   include/   public, installed: what an embedder includes
#   internal/  for the layers above in this tree only (never installed)
#   src/       the layer's own
# The caller links it to the layers below (target_link_libraries PUBLIC).
function(prefork_add_layer target export_name)
  add_library(${target} ${ARGN})
  add_library(prefork::${export_name} ALIAS ${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${export_name})
  set(dir ${CMAKE_CURRENT_SOURCE_DIR})
  target_include_directories(${target}
    PUBLIC
      $<BUILD_INTERFACE:${dir}/include>
      $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE
      ${dir}/src
  )
  if(EXISTS ${dir}/internal)
    target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${dir}/internal>)
  endif()
  target_link_libraries(${target} PRIVATE $<BUILD_INTERFACE:prefork_private>)
endfunction()
