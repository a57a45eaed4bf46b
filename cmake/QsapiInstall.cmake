# QsapiInstall: install libqsapi with a CMake package config (find_package(qsapi) -> qsapi::qsapi).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS qsapi qsapi_warnings EXPORT qsapiTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/qsapi DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT qsapiTargets NAMESPACE qsapi:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/qsapi)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/qsapiConfig.cmake.in
  ${PROJECT_BINARY_DIR}/qsapiConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/qsapi)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/qsapiConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/qsapiConfig.cmake ${PROJECT_BINARY_DIR}/qsapiConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/qsapi)
