// qsapi/process.h: process-wide hardening that qsapid and qsapi apply at start.
#ifndef QSAPI_PROCESS_H_
#define QSAPI_PROCESS_H_

#include "qsapi/result.h"

namespace qsapi {

// HardenProcess keeps secrets out of core dumps and away from other processes of the same user:
// it sets RLIMIT_CORE to 0 and marks the process non-dumpable (prctl PR_SET_DUMPABLE 0, which
// also forbids ptrace attach by non-root processes). Secret buffers are MADV_DONTDUMP in any case;
// this covers memory that OpenSSL and libc own. Call it once, early in main().
Status HardenProcess();

}  // namespace qsapi

#endif  // QSAPI_PROCESS_H_
