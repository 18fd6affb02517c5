#include "dispatcher.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <prefork/log.hpp>

namespace prefork {

Dispatcher::Dispatcher(WorkerPlan& plan) : plan_(plan) {}

// With an idle worker known, wait for connections only: a worker's "idle"
// byte then does not wake the master, it is read when needed. With none,
// wait for the channels only: the connections wait in the backlog.
void Dispatcher::add_poll_fds(std::vector<pollfd>& fds) {
  if (stopped_) return;
  if (idle_.empty()) {
    for (UniqueFd& channel : plan_.master_channels()) fds.push_back({channel.get(), POLLIN, 0});
    return;
  }
  if (std::chrono::steady_clock::now() < paused_until_) return;
  for (Listener& listener : plan_.master_listeners())
    if (listener.protocol != Protocol::datagram) fds.push_back({listener.fd.get(), POLLIN, 0});
}

void Dispatcher::serve(std::span<const pollfd> fds) {
  if (stopped_) return;
  if (idle_.empty()) collect_all_idle();
  auto listeners = plan_.master_listeners();
  for (std::size_t i = 0; i < listeners.size() && !idle_.empty(); ++i) {
    if (listeners[i].protocol == Protocol::datagram) continue;
    auto polled = std::find_if(fds.begin(), fds.end(),
                               [&](const pollfd& p) { return p.fd == listeners[i].fd.get(); });
    if (polled == fds.end() || polled->revents == 0) continue;
    while (hand_out(i)) {
      if (idle_.empty()) collect_all_idle();
      if (idle_.empty()) break;
    }
  }
}

void Dispatcher::collect_all_idle() {
  for (unsigned slot = 0; slot < plan_.master_channels().size(); ++slot) collect_idle(slot);
}

void Dispatcher::collect_idle(unsigned slot) {
  char bytes[64];
  for (;;) {
    ssize_t n = ::recv(plan_.master_channels()[slot].get(), bytes, sizeof bytes, MSG_DONTWAIT);
    if (n <= 0) return;
    for (ssize_t i = 0; i < n; ++i) idle_.push_back(slot);
  }
}

// Accepts one connection and sends it to the longest-idle worker; false when
// there is none waiting.
bool Dispatcher::hand_out(std::size_t index) {
  Listener& listener = plan_.master_listeners()[index];
  // The peer travels with the descriptor: the worker need not ask for it.
  PassedConnection passed{};
  socklen_t peer_length = sizeof passed.peer;
  int fd = ::accept4(listener.fd.get(), reinterpret_cast<sockaddr*>(&passed.peer), &peer_length,
                     SOCK_CLOEXEC);
  if (fd < 0) {
    int error = errno;
    if (error != EAGAIN && error != EWOULDBLOCK && error != ECONNABORTED && error != EINTR)
      log_sys_error("accept4", error, "on %s", listener.local.to_string().c_str());
    // Out of descriptors or memory: leave the listeners alone for a while
    // rather than wake on them again at once.
    if (error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM)
      paused_until_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
    return false;
  }
  unsigned slot = idle_.front();
  idle_.pop_front();

  passed.listener = static_cast<std::uint32_t>(index);
  passed.peer_length = peer_length;
  if (send_passed(plan_.master_channels()[slot].get(), fd, passed) < 0)
    log_sys_error("sendmsg", errno, "passing a connection to worker %u", slot);
  ::close(fd);  // the worker has its own descriptor now
  return true;
}

std::optional<Dispatcher::Clock::time_point> Dispatcher::next_deadline() const {
  if (!stopped_ && std::chrono::steady_clock::now() < paused_until_) return paused_until_;
  return std::nullopt;
}

void Dispatcher::on_slot_released(unsigned slot) {
  idle_.erase(std::remove(idle_.begin(), idle_.end(), slot), idle_.end());
  char bytes[64];
  while (::recv(plan_.master_channels()[slot].get(), bytes, sizeof bytes, MSG_DONTWAIT) > 0) {
  }
}

}  // namespace prefork
