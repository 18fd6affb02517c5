#include "accept_failure.hpp"

#include <cerrno>

#include <prefork/core/log_limiter.hpp>
#include <prefork/log.hpp>

#include <chrono>
#include <cstdint>

namespace prefork {

AcceptFailure accept_failed(int error, const Listener& listener, std::size_t index,
                            SlotWriter& stats) noexcept {
  if (error == EAGAIN || error == EWOULDBLOCK) return AcceptFailure::empty;
  // The connection died in the queue, or a signal came: try the next one.
  if (error == ECONNABORTED || error == EINTR || error == EPROTO) return AcceptFailure::next;
  stats.error(ErrorKind::other, index);
  const bool exhausted = error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM;
  // Counted every time, logged once a second: under a flood of connections
  // a worker out of descriptors fails here after every pause.
  static LogLimiter limiter(std::chrono::seconds(1));
  if (auto more = limiter.admit_now())
    log_sys_error("accept4", error, "on %s%s%s", listener.local.to_string().c_str(),
                  exhausted ? ": not accepting for a while" : "", more->text);
  return exhausted ? AcceptFailure::exhausted : AcceptFailure::failed;
}

}  // namespace prefork
