#include <prefork/close_reason.hpp>

namespace prefork {

std::string_view close_reason_name(CloseReason reason) noexcept {
  switch (reason) {
    case CloseReason::peer_closed:
      return "peer_closed";
    case CloseReason::peer_reset:
      return "peer_reset";
    case CloseReason::idle_timeout:
      return "idle_timeout";
    case CloseReason::handler_closed:
      return "handler_closed";
    case CloseReason::handler_aborted:
      return "handler_aborted";
    case CloseReason::handler_failed:
      return "handler_failed";
    case CloseReason::worker_stopping:
      return "worker_stopping";
    case CloseReason::limit_exceeded:
      return "limit_exceeded";
    case CloseReason::read_timeout:
      return "read_timeout";
    case CloseReason::write_timeout:
      return "write_timeout";
  }
  return "unknown";
}

}  // namespace prefork
