#include "systemd_notify.hpp"

#include <prefork/log.hpp>
#include <prefork/unique_fd.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

namespace prefork::systemd {

bool notify(std::string_view state) {
  const char* where = std::getenv("NOTIFY_SOCKET");
  if (where == nullptr || *where == '\0') return true;
  const std::string_view name(where);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  // '@': an abstract name (a leading NUL, no terminating one); else a path.
  if ((name.front() != '/' && name.front() != '@') || name.size() >= sizeof address.sun_path) {
    log_info("NOTIFY_SOCKET=%s is neither an absolute path nor an abstract name: not notifying",
             where);
    return false;
  }
  std::memcpy(address.sun_path, name.data(), name.size());
  socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  if (name.front() == '@')
    address.sun_path[0] = '\0';
  else
    length += 1;  // the path's terminating NUL

  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    log_sys_error("socket", errno, "for NOTIFY_SOCKET");
    return false;
  }
  if (::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL,
               reinterpret_cast<const sockaddr*>(&address), length) < 0) {
    log_sys_error("sendto", errno, "NOTIFY_SOCKET=%s", where);
    return false;
  }
  return true;
}

bool notify_ready() { return notify("READY=1"); }

bool notify_reloading() {
  // Type=notify-reload (systemd 253) wants the moment of the reload too.
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const long long usec = static_cast<long long>(now.tv_sec) * 1'000'000 + now.tv_nsec / 1'000;
  return notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

bool notify_stopping() { return notify("STOPPING=1"); }

bool notify_status(std::string_view text) {
  std::string state = "STATUS=";
  for (char c : text) state += c == '\n' ? ' ' : c;
  return notify(state);
}

void ReadyNotifier::check(unsigned ready, unsigned wanted, pid_t main_pid) {
  if (sent_ || ready < wanted) return;
  sent_ = true;
  std::string state;
  if (main_pid > 0) state.append("MAINPID=").append(std::to_string(main_pid)).append("\n");
  state.append("READY=1\nSTATUS=serving with ").append(std::to_string(ready)).append(" workers");
  notify(state);
}

}  // namespace prefork::systemd
