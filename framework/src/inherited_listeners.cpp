#include "inherited_listeners.hpp"

#include <prefork/core/environment.hpp>
#include <prefork/error.hpp>
#include <prefork/log.hpp>

#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

namespace prefork {

namespace {

int socket_option(int fd, int option, const char* name) {
  int value = 0;
  socklen_t length = sizeof value;
  if (::getsockopt(fd, SOL_SOCKET, option, &value, &length) != 0)
    throw SystemError(name, errno, "inherited fd " + std::to_string(fd));
  return value;
}

std::string describe(const ListenerSpec& spec) {
  std::string text = "--";
  text.append(protocol_name(spec.protocol)).append(" ").append(spec.address.to_string());
  return text;
}

// The inherited descriptor `fd` as the listener for `spec`, or why not.
Listener adopt(int fd, const ListenerSpec& spec, const ListenOptions& options) {
  const std::string what = "inherited fd " + std::to_string(fd);
  const std::string wanted = " (for " + describe(spec) + ")";
  const bool is_udp = spec.protocol == Protocol::datagram;
  const int type = socket_option(fd, SO_TYPE, "getsockopt(SO_TYPE)");
  if (type != (is_udp ? SOCK_DGRAM : SOCK_STREAM))
    throw std::runtime_error(what + " is a " +
                             (type == SOCK_DGRAM    ? std::string("datagram")
                              : type == SOCK_STREAM ? std::string("stream")
                                                    : "type " + std::to_string(type)) +
                             " socket, not " + (is_udp ? "a datagram" : "a stream") + " one" +
                             wanted);
  if (!is_udp && socket_option(fd, SO_ACCEPTCONN, "getsockopt(SO_ACCEPTCONN)") == 0)
    throw std::runtime_error(what + " is not listening" + wanted);
  Address local = Address::of_socket(fd);
  if (local.family() != AF_INET && local.family() != AF_INET6)
    throw std::runtime_error(what + " is not an IPv4 or IPv6 socket (family " +
                             std::to_string(local.family()) + ")" + wanted);
  // As open_listeners() would have made it: UDP never blocks; TCP as the
  // model wants.
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) throw SystemError("fcntl(F_GETFL)", errno, what);
  const int wanted_flags =
      (!options.blocking || is_udp) ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (wanted_flags != flags && ::fcntl(fd, F_SETFL, wanted_flags) != 0)
    throw SystemError("fcntl(F_SETFL)", errno, what);
  return Listener{spec.protocol, UniqueFd(fd), local};
}

constexpr std::size_t not_a_listener = static_cast<std::size_t>(-1);

bool names_a_protocol(const std::string& name) { return protocol_from_name(name).has_value(); }

// Which listener (set, index in the set) each inherited descriptor is;
// {not_a_listener, _} for the others (by name only, when `others_allowed`).
std::vector<std::pair<std::size_t, std::size_t>> assign(const std::vector<ListenerSpec>& specs,
                                                        const std::vector<std::string>& names,
                                                        std::size_t all, bool others_allowed) {
  const bool by_name =
      names.size() == all && std::any_of(names.begin(), names.end(), names_a_protocol) &&
      (others_allowed || std::all_of(names.begin(), names.end(), names_a_protocol));
  const std::size_t count =
      by_name
          ? static_cast<std::size_t>(std::count_if(names.begin(), names.end(), names_a_protocol))
          : all;
  const std::size_t per_set = specs.size();
  if (per_set == 0 || count % per_set != 0)
    throw std::runtime_error("LISTEN_FDS passes " + std::to_string(count) + " descriptors for " +
                             std::to_string(per_set) +
                             " listeners: give one --tcp/--framed/--udp flag per inherited "
                             "socket (or per socket of each set)");
  std::vector<std::pair<std::size_t, std::size_t>> places(all, {not_a_listener, 0});
  if (!by_name) {
    for (std::size_t i = 0; i < count; ++i) places[i] = {i / per_set, i % per_set};
    return places;
  }
  // The n-th descriptor named P is the (n mod k)-th listener of protocol P
  // in set n / k, k being the number of P listeners.
  for (Protocol protocol : {Protocol::stream, Protocol::framed, Protocol::datagram}) {
    std::vector<std::size_t> of_protocol;
    for (std::size_t i = 0; i < per_set; ++i)
      if (specs[i].protocol == protocol) of_protocol.push_back(i);
    std::size_t seen = 0;
    for (std::size_t i = 0; i < all; ++i) {
      if (protocol_from_name(names[i]) != protocol) continue;
      if (of_protocol.empty())
        throw std::runtime_error("LISTEN_FDNAMES names fd " +
                                 std::to_string(env::listen_fds_start + i) + " '" + names[i] +
                                 "', but no --" + names[i] + " listener is configured");
      places[i] = {seen / of_protocol.size(), of_protocol[seen % of_protocol.size()]};
      ++seen;
    }
    if (seen != of_protocol.size() * (count / per_set))
      throw std::runtime_error("LISTEN_FDNAMES names " + std::to_string(seen) + " descriptors '" +
                               std::string(protocol_name(protocol)) + "' for " +
                               std::to_string(of_protocol.size()) + " --" +
                               std::string(protocol_name(protocol)) + " listeners (in " +
                               std::to_string(count / per_set) + " sets)");
  }
  return places;
}

}  // namespace

std::optional<std::vector<std::vector<Listener>>> take_inherited_listeners(
    const std::vector<ListenerSpec>& specs, const ListenOptions& options, unsigned sets,
    std::vector<std::pair<std::string, UniqueFd>>* others) {
  const auto pid = env::number(env::listen_pid);
  const auto count = env::number(env::listen_fds);
  const std::vector<std::string> names = env::listen_fd_names();
  // Read once, then gone: no child (worker, handler's subprocess) may take
  // them for its own.
  ::unsetenv(env::listen_pid);
  ::unsetenv(env::listen_fds);
  ::unsetenv(env::listen_fdnames);
  if (!count || *count == 0) return std::nullopt;
  if (!pid || *pid != ::getpid()) {
    log_info("LISTEN_FDS=%ld is for pid %ld, not this process: binding the listeners instead",
             *count, pid.value_or(0));
    return std::nullopt;
  }
  if (*count < 0 || *count > 4096)
    throw std::runtime_error("LISTEN_FDS=" + std::to_string(*count) + " is out of range");
  const std::size_t total = static_cast<std::size_t>(*count);
  // Ours from now on, whatever follows: close-on-exec at once.
  for (std::size_t i = 0; i < total; ++i) {
    const int fd = env::listen_fds_start + static_cast<int>(i);
    if (::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
      throw SystemError("fcntl(F_SETFD)", errno, "inherited fd " + std::to_string(fd));
  }
  // Owned before anything can throw, so that a mismatch closes them all.
  std::vector<UniqueFd> owned;
  for (std::size_t i = 0; i < total; ++i)
    owned.emplace_back(env::listen_fds_start + static_cast<int>(i));

  const auto places = assign(specs, names, total, others != nullptr);
  std::size_t inherited_sets = 0;
  for (auto [set, index] : places)
    if (set != not_a_listener) inherited_sets = std::max(inherited_sets, set + 1);
  std::vector<std::vector<std::optional<Listener>>> found(inherited_sets);
  for (auto& set : found) set.resize(specs.size());
  for (std::size_t i = 0; i < total; ++i) {
    auto [set, index] = places[i];
    if (set == not_a_listener) {
      others->emplace_back(names[i], std::move(owned[i]));
      continue;
    }
    found[set][index] = adopt(owned[i].get(), specs[index], options);
    owned[i].release();
  }
  std::vector<std::vector<Listener>> result;
  for (auto& set : found) {
    result.emplace_back();
    for (auto& listener : set) result.back().push_back(std::move(*listener));
  }

  if (result.size() > sets) {
    log_info("%zu inherited sets of listeners, %u used: closing the others", result.size(), sets);
    result.resize(sets);
  }
  if (result.size() < sets) {
    // --accept reuseport: one socket per slot; bind the missing ones beside
    // the inherited set, which must allow it.
    for (const Listener& listener : result.front())
      if (socket_option(listener.fd.get(), SO_REUSEPORT, "getsockopt(SO_REUSEPORT)") == 0)
        throw std::runtime_error(
            "--accept reuseport needs " + std::to_string(sets) + " sockets per listener, " +
            std::to_string(result.size()) + " inherited, and inherited fd " +
            std::to_string(listener.fd.get()) + " (" + listener.local.to_string() +
            ") lacks SO_REUSEPORT to bind more beside it (ReusePort=yes in the .socket unit), "
            "or choose another --accept");
    std::vector<ListenerSpec> bound;
    for (const Listener& listener : result.front())
      bound.push_back({listener.protocol, listener.local});
    ListenOptions more = options;
    more.reuseport = true;
    while (result.size() < sets) result.push_back(open_listeners(bound, more));
  }
  return result;
}

void hand_over_listeners(std::span<const std::vector<Listener>> sets,
                         std::span<const NamedSocket> others) {
  std::vector<int> sources;
  std::string names;
  for (const auto& set : sets)
    for (const Listener& listener : set) {
      sources.push_back(listener.fd.get());
      names.append(names.empty() ? "" : ":").append(protocol_name(listener.protocol));
    }
  for (const NamedSocket& other : others) {
    if (other.name.empty() || names_a_protocol(other.name) ||
        other.name.find(':') != std::string::npos)
      throw std::invalid_argument("cannot hand over a socket named '" + other.name + "'");
    sources.push_back(other.fd);
    names.append(names.empty() ? "" : ":").append(other.name);
  }
  std::vector<int> scratch(sources.size());
  int error = 0;
  if (const char* call = move_to_listen_fds(sources, scratch, error))
    throw SystemError(call, error, "listener handover");
  const std::string count = std::to_string(sources.size());
  const std::string pid = std::to_string(::getpid());
  if (::setenv(env::listen_fds, count.c_str(), 1) != 0 ||
      ::setenv(env::listen_fdnames, names.c_str(), 1) != 0 ||
      ::setenv(env::listen_pid, pid.c_str(), 1) != 0)
    throw SystemError("setenv", errno, "LISTEN_*");
}

const char* move_to_listen_fds(std::span<const int> sources, std::span<int> scratch,
                               int& error) noexcept {
  const int first_free = env::listen_fds_start + static_cast<int>(sources.size());
  for (std::size_t i = 0; i < sources.size(); ++i) {
    scratch[i] = ::fcntl(sources[i], F_DUPFD_CLOEXEC, first_free);
    if (scratch[i] < 0) {
      error = errno;
      return "fcntl(F_DUPFD_CLOEXEC)";
    }
  }
  for (std::size_t i = 0; i < sources.size(); ++i) {
    // dup2() leaves the target without FD_CLOEXEC: it crosses the exec.
    if (::dup2(scratch[i], env::listen_fds_start + static_cast<int>(i)) < 0) {
      error = errno;
      return "dup2";
    }
    ::close(scratch[i]);
  }
  return nullptr;
}

// Boost.Process 1.81's launcher means to close every other descriptor but
// skips some (its close_all misses those below the highest whitelisted one):
// the spawn starter marks them too.
void mark_close_on_exec_from(int first) noexcept {
  if (::close_range(static_cast<unsigned>(first), ~0u, CLOSE_RANGE_CLOEXEC) == 0) return;
  rlimit limit{};  // kernels before 5.11: one descriptor at a time
  long last = ::getrlimit(RLIMIT_NOFILE, &limit) == 0 ? static_cast<long>(limit.rlim_cur) : 1024;
  for (long fd = first; fd < std::min(last, 1L << 16); ++fd) {
    int flags = ::fcntl(static_cast<int>(fd), F_GETFD);
    if (flags >= 0) ::fcntl(static_cast<int>(fd), F_SETFD, flags | FD_CLOEXEC);
  }
}

}  // namespace prefork
