#include "keystore/internal/cluster.h"

#include <algorithm>
#include <array>
#include <optional>

#include "common/internal/text.h"
#include "qsapi/crypto/random.h"

namespace qsapi::keystore::internal {
namespace {

constexpr std::size_t kCanarySecretSize = 32;

}  // namespace

Status CheckCanary(KeyProtector& protector, const ClusterRow& row) {
  Result<SecretBytes> secret = protector.Unwrap(row.canary, ClusterCanaryAad(row.cluster_id));
  if (secret.ok() && secret->size() == kCanarySecretSize) return OkStatus();
  if (!secret.ok() && secret.error().code() == ErrorCode::kUnavailable) return secret.error();
  return FailedPrecondition("this node's KEK is not the cluster's: the canary written when cluster " + row.cluster_id +
                            " was made does not unwrap with " + protector.Describe() +
                            "; give this node a copy of the cluster's token (`qsapi cluster join`) or point it "
                            "at its own database");
}

Bytes ClusterCanaryAad(std::string_view cluster_id) {
  const std::string text = std::string("qsapi cluster canary v1") + '\0' + std::string(cluster_id);
  return {text.begin(), text.end()};
}

Status CheckClusterId(std::string_view cluster_id, std::string_view origin) {
  if (cluster_id.size() != 32 || !qsapi::internal::IsLowerHex(cluster_id)) {
    return InvalidArgument(std::string(origin) +
                           ": a cluster id is 32 lower-case hex characters (as `qsapi cluster "
                           "init` prints it)");
  }
  return OkStatus();
}

Result<ClusterRow> JoinCluster(KeyProtector& protector, MetadataStore& store, const AuditTrails& audit,
                               const std::string& expected) {
  QSAPI_ASSIGN_OR_RETURN(std::optional<ClusterRow> row, store.GetCluster());
  if (!row && !expected.empty()) {
    return FailedPrecondition(
        "the keystore database holds no cluster identity, and this node is configured for "
        "cluster " +
        expected +
        ": is it the cluster's database? (`qsapi cluster init` makes "
        "the identity once, on the first node)");
  }
  if (!row) {
    ClusterRow made;
    std::array<std::uint8_t, 16> id{};
    QSAPI_RETURN_IF_ERROR(crypto::RandomFill(id));
    made.cluster_id = qsapi::internal::HexEncode(id);
    SecretBytes secret(kCanarySecretSize);
    QSAPI_RETURN_IF_ERROR(crypto::RandomFill(secret.span()));
    QSAPI_ASSIGN_OR_RETURN(made.canary, protector.Wrap(secret.view(), ClusterCanaryAad(made.cluster_id)));
    made.created = UnixNow();
    const Status st = store.CreateCluster(made, audit.Entry("cluster.init", "", 0, "cluster " + made.cluster_id));
    if (st.ok()) return made;
    if (st.error().code() != ErrorCode::kAlreadyExists) return st.error();
    QSAPI_ASSIGN_OR_RETURN(row, store.GetCluster());  // another node made it first
    if (!row) return Unavailable("the cluster identity another node wrote cannot be read back; retry");
  }
  if (!expected.empty() && row->cluster_id != expected) {
    return FailedPrecondition("the keystore database belongs to cluster " + row->cluster_id +
                              ", and this node is configured for cluster " + expected);
  }
  QSAPI_RETURN_IF_ERROR(CheckCanary(protector, *row));
  return *std::move(row);
}

}  // namespace qsapi::keystore::internal
