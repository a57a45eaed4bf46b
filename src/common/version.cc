#include "qsapi/version.h"

#include <openssl/crypto.h>
#include <sodium.h>

#include "qsapi/version_config.h"

namespace qsapi {

std::string_view Version() noexcept { return QSAPI_VERSION_STRING; }

std::string_view OpenSslVersion() noexcept { return OpenSSL_version(OPENSSL_VERSION); }

std::string_view SodiumVersion() noexcept { return sodium_version_string(); }

std::string VersionBanner(std::string_view program) {
  std::string banner(program);
  banner += ' ';
  banner += Version();
  banner += " (";
  banner += OpenSslVersion();
  banner += "; libsodium ";
  banner += SodiumVersion();
  banner += ')';
  return banner;
}

}  // namespace qsapi
