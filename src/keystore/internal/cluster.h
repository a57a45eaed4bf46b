// The deployment's identity (ClusterRow in metadata_store.h): one cluster id and one KEK for all
// the nodes on a database. Every node proves at open that its KEK is the cluster's by unwrapping
// the canary written when the identity was made; a node with another KEK stops there, before it
// writes anything.
#ifndef QSAPI_KEYSTORE_INTERNAL_CLUSTER_H_
#define QSAPI_KEYSTORE_INTERNAL_CLUSTER_H_

#include <string>
#include <string_view>

#include "keystore/internal/audit_trails.h"
#include "keystore/internal/metadata_store.h"
#include "keystore/internal/pkcs11_token.h"
#include "qsapi/result.h"

namespace qsapi::keystore::internal {

// ClusterCanaryAad binds the canary's wrapping to the cluster id: a canary copied from another
// cluster's database does not unwrap.
Bytes ClusterCanaryAad(std::string_view cluster_id);

// CheckClusterId: 32 lower-case hex characters (kInvalidArgument otherwise, naming `origin`).
Status CheckClusterId(std::string_view cluster_id, std::string_view origin);

// CheckCanary says whether `protector` holds the KEK of the cluster `row` names (its canary
// unwraps); kFailedPrecondition "this node's KEK is not the cluster's" otherwise.
Status CheckCanary(KeyProtector& protector, const ClusterRow& row);

// JoinCluster reads the database's identity and checks it against this node (`expected` is
// empty or passed CheckClusterId, which Keystore::Open runs before it touches anything):
// - `expected` (the configured cluster id) non-empty: the database must hold that cluster
//   (kFailedPrecondition for another one, or for none: a node of a cluster never starts one);
// - `expected` empty: a database without an identity gets one now (the first node, or `qsapi
//   cluster init`), in one transaction with its audit entry; another node racing to do the same
//   loses cleanly and reads the winner's.
// Then the canary must unwrap with this node's KEK: kFailedPrecondition ("this node's KEK is not
// the cluster's") when it does not; the token's kUnavailable passes through unchanged.
Result<ClusterRow> JoinCluster(KeyProtector& protector, MetadataStore& store, const AuditTrails& audit,
                               const std::string& expected);

}  // namespace qsapi::keystore::internal

#endif  // QSAPI_KEYSTORE_INTERNAL_CLUSTER_H_
