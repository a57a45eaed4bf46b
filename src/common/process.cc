#include "qsapi/process.h"

#include <sys/prctl.h>
#include <sys/resource.h>

#include <cerrno>
#include <string>
#include <system_error>

namespace qsapi {

Status HardenProcess() {
  const rlimit no_core{0, 0};
  if (setrlimit(RLIMIT_CORE, &no_core) != 0) {
    return Internal("setrlimit(RLIMIT_CORE, 0) failed: " + std::system_category().message(errno));
  }
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    return Internal("prctl(PR_SET_DUMPABLE, 0) failed: " + std::system_category().message(errno));
  }
  return OkStatus();
}

}  // namespace qsapi
