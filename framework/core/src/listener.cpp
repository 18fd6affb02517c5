#include <prefork/error.hpp>
#include <prefork/listener.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include <prefork/core/environment.hpp>

namespace prefork {

std::string_view protocol_name(Protocol protocol) noexcept {
  switch (protocol) {
    case Protocol::stream:
      return "tcp";
    case Protocol::framed:
      return "framed";
    case Protocol::datagram:
      return "udp";
  }
  return "?";
}

std::optional<Protocol> protocol_from_name(std::string_view name) noexcept {
  if (name == "tcp") return Protocol::stream;
  if (name == "framed") return Protocol::framed;
  if (name == "udp") return Protocol::datagram;
  return std::nullopt;
}

namespace {

Listener open_listener(const ListenerSpec& spec, const ListenOptions& options) {
  const std::string where = spec.address.to_string();
  const bool is_udp = spec.protocol == Protocol::datagram;
  int type = (is_udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC;
  // UDP stays non-blocking: every model polls it and may lose the race.
  if (!options.blocking || is_udp) type |= SOCK_NONBLOCK;
  UniqueFd fd(::socket(spec.address.family(), type, 0));
  if (!fd) throw SystemError("socket", errno, where);

  int on = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0)
    throw SystemError("setsockopt(SO_REUSEADDR)", errno, where);
  if (options.reuseport && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0)
    throw SystemError("setsockopt(SO_REUSEPORT)", errno, where);
  // As nginx does: [::]:80 means IPv6 only, so it can sit beside 0.0.0.0:80.
  if (spec.address.family() == AF_INET6 &&
      ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0)
    throw SystemError("setsockopt(IPV6_V6ONLY)", errno, where);

  if (::bind(fd.get(), spec.address.data(), spec.address.length()) != 0)
    throw SystemError("bind", errno, where);
  if (!is_udp && ::listen(fd.get(), options.backlog) != 0)
    throw SystemError("listen", errno, where);

  Address local = Address::of_socket(fd.get());
  return Listener{spec.protocol, std::move(fd), local};
}

Protocol protocol_of_inherited(int fd, std::string_view name) {
  if (!name.empty()) {
    if (auto protocol = protocol_from_name(name)) return *protocol;
    throw std::runtime_error("LISTEN_FDNAMES names an unknown protocol '" + std::string(name) +
                             "' (expected tcp, framed or udp)");
  }
  int type = 0;
  socklen_t length = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0)
    throw SystemError("getsockopt(SO_TYPE)", errno, "inherited fd " + std::to_string(fd));
  return type == SOCK_DGRAM ? Protocol::datagram : Protocol::stream;
}

}  // namespace

std::vector<Listener> open_listeners(const std::vector<ListenerSpec>& specs,
                                     const ListenOptions& options) {
  std::vector<Listener> listeners;
  listeners.reserve(specs.size());
  for (const auto& spec : specs) listeners.push_back(open_listener(spec, options));
  return listeners;
}

std::optional<std::vector<Listener>> listeners_from_environment(
    std::vector<std::pair<std::string, int>>* others) {
  auto pid = env::number(env::listen_pid);
  auto count = env::number(env::listen_fds);
  if (!pid || !count || *pid != ::getpid()) return std::nullopt;
  if (*count < 0 || *count > 1024) throw std::runtime_error("LISTEN_FDS out of range");

  const std::vector<std::string> names = env::listen_fd_names();
  std::vector<Listener> listeners;
  for (int i = 0; i < *count; ++i) {
    int fd = env::listen_fds_start + i;
    const std::size_t index = static_cast<std::size_t>(i);
    std::string_view name = index < names.size() ? std::string_view(names[index]) : "";

    // Ours now: no exec'd grandchild should inherit them. Their blocking
    // mode is the master's choice, shared by every worker: leave it.
    if (::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
      throw SystemError("fcntl(F_SETFD)", errno, "inherited fd " + std::to_string(fd));
    if (others != nullptr && !name.empty() && !protocol_from_name(name)) {
      others->emplace_back(std::string(name), fd);
      continue;
    }
    Protocol protocol = protocol_of_inherited(fd, name);
    listeners.push_back(Listener{protocol, UniqueFd(fd), Address::of_socket(fd)});
  }
  ::unsetenv(env::listen_pid);
  ::unsetenv(env::listen_fds);
  ::unsetenv(env::listen_fdnames);
  return listeners;
}

}  // namespace prefork
