// KeyIdReplayGuard (qsapi/session/peer_session.h): the responder's memory of accepted QKD key_IDs.
#include <algorithm>
#include <cctype>

#include "qsapi/session/peer_session.h"

namespace qsapi::session {

Status KeyIdReplayGuard::CheckAndRecord(std::span<const std::string> key_ids) {
  std::vector<std::string> folded;
  folded.reserve(key_ids.size());
  for (const auto& id : key_ids) {
    std::string f = id;
    for (char& c : f) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    folded.push_back(std::move(f));
  }
  std::lock_guard lock(mu_);
  for (std::size_t i = 0; i < folded.size(); ++i) {
    const auto before = folded.begin() + static_cast<std::ptrdiff_t>(i);
    if (seen_.contains(folded[i]) || std::find(folded.begin(), before, folded[i]) != before) {
      return PermissionDenied("QKD key_ID " + folded[i] + " was already used in an earlier session (replay refused)");
    }
  }
  for (auto& f : folded) {
    seen_.insert(f);
    order_.push_back(std::move(f));
    if (order_.size() > capacity_) {
      seen_.erase(order_.front());
      order_.pop_front();
    }
  }
  return OkStatus();
}

std::size_t KeyIdReplayGuard::size() const {
  std::lock_guard lock(mu_);
  return order_.size();
}

}  // namespace qsapi::session
