# QsapiWarnings: the warning set for qsapi's own code (not for third-party headers).
add_library(qsapi_warnings INTERFACE)
target_compile_options(qsapi_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
  -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wformat=2
  $<$<BOOL:${QSAPI_WERROR}>:-Werror>)
