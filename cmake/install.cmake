# Install rules and the CMake package, so that another project can write
#   find_package(prefork 0.1 REQUIRED)
#   target_link_libraries(app PRIVATE prefork::prefork)
#
# Installed: the library (exported as prefork::prefork), the public headers,
# the programs prefork-top and prefork-worker (also exported, as
# prefork::prefork-top and prefork::prefork-worker, so a consumer can name
# their paths), and preforkConfig.cmake + preforkConfigVersion.cmake.
#
# Off by default when prefork is embedded with add_subdirectory/FetchContent.
option(PREFORK_INSTALL "Generate prefork's install rules" ${PROJECT_IS_TOP_LEVEL})
if(NOT PREFORK_INSTALL)
  return()
endif()

include(CMakePackageConfigHelpers)

set(PREFORK_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/prefork
    CACHE STRING "Where preforkConfig.cmake is installed, relative to the prefix")

# With -DBUILD_SHARED_LIBS=ON the installed programs find libprefork.so next
# to them, wherever the prefix is.
get_target_property(_prefork_type prefork TYPE)
if(_prefork_type STREQUAL "SHARED_LIBRARY")
  set_target_properties(prefork-top prefork-worker PROPERTIES
    INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}")
endif()
unset(_prefork_type)

install(TARGETS prefork prefork_core prefork_workers prefork-top prefork-worker
  EXPORT preforkTargets
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
)

# The public headers of the three layers land in one include/prefork/; the
# layers' internal/ folders are for this tree only.
foreach(layer framework/core workers framework)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${layer}/include/prefork
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
    FILES_MATCHING PATTERN "*.hpp"
  )
endforeach()

install(EXPORT preforkTargets
  NAMESPACE prefork::
  FILE preforkTargets.cmake
  DESTINATION ${PREFORK_INSTALL_CMAKEDIR}
)

configure_package_config_file(
  ${CMAKE_CURRENT_LIST_DIR}/preforkConfig.cmake.in
  ${PROJECT_BINARY_DIR}/preforkConfig.cmake
  INSTALL_DESTINATION ${PREFORK_INSTALL_CMAKEDIR}
)
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/preforkConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMajorVersion
)
install(FILES
  ${PROJECT_BINARY_DIR}/preforkConfig.cmake
  ${PROJECT_BINARY_DIR}/preforkConfigVersion.cmake
  DESTINATION ${PREFORK_INSTALL_CMAKEDIR}
)
