# QsapiLint: `cmake --build <dir> --target format-check | format | tidy`.
find_program(QSAPI_CLANG_FORMAT NAMES clang-format-14 clang-format)
find_program(QSAPI_CLANG_TIDY NAMES clang-tidy-14 clang-tidy)
file(GLOB_RECURSE QSAPI_LINT_SOURCES CONFIGURE_DEPENDS
  ${PROJECT_SOURCE_DIR}/include/*.h ${PROJECT_SOURCE_DIR}/src/*.cc ${PROJECT_SOURCE_DIR}/src/*.h
  ${PROJECT_SOURCE_DIR}/programs/*.cc ${PROJECT_SOURCE_DIR}/tests/*.cc ${PROJECT_SOURCE_DIR}/tests/*.h
  ${PROJECT_SOURCE_DIR}/bench/*.cc ${PROJECT_SOURCE_DIR}/fuzz/*.cc)
file(GLOB_RECURSE QSAPI_TIDY_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/*.cc ${PROJECT_SOURCE_DIR}/programs/*.cc)
if(QSAPI_CLANG_FORMAT)
  add_custom_target(format COMMAND ${QSAPI_CLANG_FORMAT} -i ${QSAPI_LINT_SOURCES}
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR} COMMENT "clang-format -i")
  add_custom_target(format-check COMMAND ${QSAPI_CLANG_FORMAT} --dry-run --Werror ${QSAPI_LINT_SOURCES}
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR} COMMENT "clang-format --dry-run --Werror")
endif()
if(QSAPI_CLANG_TIDY)
  # clang-tidy reads .clang-tidy at the project root and the compile database of this build.
  add_custom_target(tidy COMMAND ${QSAPI_CLANG_TIDY} -p ${PROJECT_BINARY_DIR} --quiet ${QSAPI_TIDY_SOURCES}
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR} COMMENT "clang-tidy (library and programs)")
endif()
add_custom_target(lint DEPENDS)
if(TARGET format-check)
  add_dependencies(lint format-check)
endif()
if(TARGET tidy)
  add_dependencies(lint tidy)
endif()
