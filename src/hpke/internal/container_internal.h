// Internal: what the container and the STREAM share.
#ifndef QSAPI_SRC_HPKE_INTERNAL_CONTAINER_INTERNAL_H_
#define QSAPI_SRC_HPKE_INTERNAL_CONTAINER_INTERNAL_H_

#include "qsapi/hpke/container.h"
#include "qsapi/hpke/hpke.h"

namespace qsapi::hpke::internal {

// CheckHeader checks every bound of a header (and the enc length when `check_enc`).
Status CheckHeader(const ContainerHeader& header, bool check_enc);

// OpenState is a recipient context set up for a container, and SHA-256 of its header.
struct OpenState {
  RecipientContext context;
  Bytes header_digest;
};

// PrepareOpen checks that `recipient` and options.psk are the ones the header names (clear
// kFailedPrecondition errors otherwise) and sets up the recipient context (AuthenticationFailed()
// when that fails).
Result<OpenState> PrepareOpen(const ContainerHeader& header, const RecipientKey& recipient, const OpenOptions& options);

}  // namespace qsapi::hpke::internal

#endif  // QSAPI_SRC_HPKE_INTERNAL_CONTAINER_INTERNAL_H_
