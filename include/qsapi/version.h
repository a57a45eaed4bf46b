// qsapi/version.h: product and dependency versions.
#ifndef QSAPI_VERSION_H_
#define QSAPI_VERSION_H_

#include <string>
#include <string_view>

namespace qsapi {

// Version returns the product version ("0.1.0").
std::string_view Version() noexcept;

// OpenSslVersion returns the version of the OpenSSL qsapi runs on, as OpenSSL reports it at run
// time ("OpenSSL 3.5.7 9 Jun 2026").
std::string_view OpenSslVersion() noexcept;

// SodiumVersion returns the run-time version of libsodium ("1.0.18").
std::string_view SodiumVersion() noexcept;

// VersionBanner returns the one-line banner `--version` prints:
// "<program> <version> (OpenSSL 3.5.7 9 Jun 2026; libsodium 1.0.18)".
std::string VersionBanner(std::string_view program);

}  // namespace qsapi

#endif  // QSAPI_VERSION_H_
