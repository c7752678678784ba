# Installs headers, libraries, the browser client and a CMake package config, so
# that an application elsewhere can write:
#   find_package(Derive REQUIRED)
#   target_link_libraries(app PRIVATE derive::web)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(DERIVE_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/Derive)

set_target_properties(derive_core PROPERTIES EXPORT_NAME core)
set_target_properties(derive_cluster PROPERTIES EXPORT_NAME cluster)
set_target_properties(derive_actors PROPERTIES EXPORT_NAME actors)
set_target_properties(derive_web PROPERTIES EXPORT_NAME web)
set_target_properties(derive_beast PROPERTIES EXPORT_NAME beast)
set_target_properties(derive_warnings PROPERTIES EXPORT_NAME warnings)

# Only the public headers (include/derive) are installed.
target_include_directories(derive_core INTERFACE $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)

install(TARGETS derive_core derive_cluster derive_actors derive_web derive_beast derive_warnings
  EXPORT DeriveTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
# The `derive` command-line tool (tools/derive).
install(TARGETS derive_tool RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/derive
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/web/client/
  DESTINATION ${CMAKE_INSTALL_DATADIR}/derive/client)
install(EXPORT DeriveTargets NAMESPACE derive:: DESTINATION ${DERIVE_INSTALL_CMAKEDIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/DeriveConfig.cmake.in
  ${PROJECT_BINARY_DIR}/DeriveConfig.cmake
  INSTALL_DESTINATION ${DERIVE_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/DeriveConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/DeriveConfig.cmake
  ${PROJECT_BINARY_DIR}/DeriveConfigVersion.cmake
  ${PROJECT_SOURCE_DIR}/cmake/FindCAF.cmake
  ${PROJECT_SOURCE_DIR}/cmake/FindLMDB.cmake
  ${PROJECT_SOURCE_DIR}/cmake/FindNATS.cmake
  DESTINATION ${DERIVE_INSTALL_CMAKEDIR})
