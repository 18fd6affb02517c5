#include "accept_failure.hpp"

#include <cerrno>

#include <prefork/log.hpp>

namespace prefork {

AcceptFailure accept_failed(int error, const Listener& listener, std::size_t index,
                            SlotWriter& stats) noexcept {
  if (error == EAGAIN || error == EWOULDBLOCK) return AcceptFailure::empty;
  // The connection died in the queue, or a signal came: try the next one.
  if (error == ECONNABORTED || error == EINTR || error == EPROTO) return AcceptFailure::next;
  stats.error(ErrorKind::other, index);
  log_sys_error("accept4", error, "on %s", listener.local.to_string().c_str());
  if (error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM)
    return AcceptFailure::exhausted;
  return AcceptFailure::failed;
}

}  // namespace prefork
