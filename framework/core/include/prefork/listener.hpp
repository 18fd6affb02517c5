// Listening sockets: created by the master before any worker exists, or
// received by a spawned worker as inherited descriptors (LISTEN_FDS).
#pragma once

#include <prefork/address.hpp>
#include <prefork/unique_fd.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prefork {

// What a listener speaks; a handler sees it in Request::protocol.
enum class Protocol : unsigned char {
  stream,    // raw TCP: each chunk read is one request
  framed,    // TCP carrying 4-byte big-endian length-prefixed frames
  datagram,  // UDP: each datagram is one request
};

// "tcp", "framed", "udp": the names used on the command line, in the
// `listening` lines and in LISTEN_FDNAMES.
std::string_view protocol_name(Protocol protocol) noexcept;
std::optional<Protocol> protocol_from_name(std::string_view name) noexcept;

// A TCP listener's own --idle-timeout, --read-timeout, --write-timeout
// (`--framed HOST:PORT,idle-timeout=5`); those not given are the server's.
struct ListenerTimeouts {
  std::optional<std::chrono::milliseconds> idle, read, write;
  bool operator==(const ListenerTimeouts&) const = default;
};

struct ListenerSpec {
  Protocol protocol;
  Address address;
  ListenerTimeouts timeouts{};
};

struct Listener {
  Protocol protocol;
  UniqueFd fd;
  Address local;  // the address actually bound (port 0 resolved)
};

struct ListenOptions {
  int backlog = 1024;
  // Blocking sockets, for workers that sleep in accept() itself (Stevens'
  // pre-forked servers); the event loop needs non-blocking ones.
  bool blocking = false;
  // SO_REUSEPORT, so that several sockets can bind the same address and the
  // kernel spreads connections over them.
  bool reuseport = false;
};

// Creates, binds and (for TCP) listens on every spec, close-on-exec, with
// SO_REUSEADDR. Throws SystemError naming the address
// ("bind 127.0.0.1:8080: Address already in use").
std::vector<Listener> open_listeners(const std::vector<ListenerSpec>& specs,
                                     const ListenOptions& options = {});

// The systemd socket-activation convention: descriptors 3 .. 3+LISTEN_FDS-1,
// kinds from LISTEN_FDNAMES, valid only when LISTEN_PID is this process.
// Returns nullopt when the environment holds no listeners for us; throws when
// it holds malformed ones. Unsets the LISTEN_* variables, as sd_listen_fds does.
// Descriptors whose name is not a protocol (e.g. a master's "channel") are
// left open and reported in `others` (name, fd) when given, else refused.
std::optional<std::vector<Listener>> listeners_from_environment(
    std::vector<std::pair<std::string, int>>* others = nullptr);

}  // namespace prefork
