# QsapiOpenSSL: find OpenSSL >= 3.5 and link it statically with hidden symbols.
#
# Debian 12 ships OpenSSL 3.0, which has no ML-KEM / ML-DSA / SLH-DSA. scripts/setup.sh builds
# OpenSSL 3.5.x into a cache and records its prefix in ${QSAPI_CACHE_DIR}/openssl.prefix; this
# module picks that up when OPENSSL_ROOT_DIR is not given.
#
# Why static and hidden: SoftHSM2 (and other PKCS#11 modules) link the system libcrypto.so.3 and
# are dlopen()ed into our processes. Our OpenSSL 3.5 is linked into the qsapi binaries as static
# archives and excluded from the dynamic symbol table (-Wl,--exclude-libs,libcrypto.a:libssl.a), so the module's
# references resolve to its own libcrypto and ours to ours: two OpenSSLs that never see each other.
# tests/crypto/softhsm_coexistence_test.cc proves it. See docs/DECISIONS.md.
set(_qsapi_min_openssl 3.5.0)

if(NOT OPENSSL_ROOT_DIR AND DEFINED ENV{QSAPI_OPENSSL_PREFIX})
  set(OPENSSL_ROOT_DIR "$ENV{QSAPI_OPENSSL_PREFIX}")
endif()
if(NOT OPENSSL_ROOT_DIR)
  if(DEFINED ENV{QSAPI_CACHE_DIR})
    set(_qsapi_cache "$ENV{QSAPI_CACHE_DIR}")
  elseif(DEFINED ENV{XDG_CACHE_HOME})
    set(_qsapi_cache "$ENV{XDG_CACHE_HOME}/qsapi")
  else()
    set(_qsapi_cache "$ENV{HOME}/.cache/qsapi")
  endif()
  if(EXISTS "${_qsapi_cache}/openssl.prefix")
    file(STRINGS "${_qsapi_cache}/openssl.prefix" _qsapi_prefix LIMIT_COUNT 1)
    set(OPENSSL_ROOT_DIR "${_qsapi_prefix}")
  endif()
endif()
set(OPENSSL_ROOT_DIR "${OPENSSL_ROOT_DIR}" CACHE PATH "Prefix of OpenSSL >= ${_qsapi_min_openssl}")

set(OPENSSL_USE_STATIC_LIBS TRUE)
find_package(OpenSSL QUIET)
if(NOT OPENSSL_FOUND OR OPENSSL_VERSION VERSION_LESS _qsapi_min_openssl)
  if(OPENSSL_FOUND)
    set(_qsapi_found "found OpenSSL ${OPENSSL_VERSION} at ${OPENSSL_INCLUDE_DIR}")
  else()
    set(_qsapi_found "found no static OpenSSL (libcrypto.a)")
  endif()
  message(FATAL_ERROR
    "qsapi needs OpenSSL >= ${_qsapi_min_openssl} (ML-KEM, ML-DSA, SLH-DSA, hybrid TLS groups), "
    "but CMake ${_qsapi_found}.\n"
    "Run scripts/setup.sh: it builds OpenSSL 3.5 from Debian 13's source package into a cache "
    "and records its prefix, or pass -DOPENSSL_ROOT_DIR=<prefix of OpenSSL >= 3.5 with static libraries>.")
endif()
if(NOT OPENSSL_CRYPTO_LIBRARY MATCHES "\\.a$")
  message(FATAL_ERROR "qsapi links OpenSSL statically, but found ${OPENSSL_CRYPTO_LIBRARY}. "
    "Use the prefix scripts/setup.sh builds (configured no-shared -fPIC).")
endif()
message(STATUS "qsapi: OpenSSL ${OPENSSL_VERSION} (static) from ${OPENSSL_ROOT_DIR}")

# Executables and shared objects that link OpenSSL statically must not export its symbols.
# Only the OpenSSL archives: hiding everything (ALL) would also hide the sanitizer runtimes'
# malloc and operator new, which must stay interposable.
set(QSAPI_HIDE_STATIC_LIBS_LINK_OPTION "LINKER:--exclude-libs,libcrypto.a:libssl.a")
