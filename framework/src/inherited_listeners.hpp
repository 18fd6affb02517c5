// Listening sockets that cross an exec into a master, under systemd's
// socket-activation convention (sd_listen_fds(3)): descriptors 3, 4, ...,
// their count in LISTEN_FDS, their names in LISTEN_FDNAMES (':'-separated),
// valid only when LISTEN_PID is the receiving process.
//
// In: a master started by systemd (a .socket unit) or by an old master
// during a binary upgrade uses them instead of binding. Out: an old master's
// forked child hands every listening socket it holds to the new master it
// is about to exec.
//
// Matching the descriptors to the configured --tcp/--framed/--udp listeners:
// - by name, when every name is a protocol ("tcp", "framed", "udp": systemd's
//   FileDescriptorName=, one .socket unit per listener): the n-th descriptor
//   named "framed" is the n-th --framed listener;
// - else by order (systemd passes a unit's sockets in the order of its
//   Listen lines; unnamed ones are called after the unit): the n-th
//   descriptor is the n-th listener flag.
// Either way each descriptor must be of its listener's kind (SOCK_STREAM and
// listening for tcp/framed, SOCK_DGRAM for udp, IPv4 or IPv6); the address is
// not compared (the socket's own is announced). A whole multiple of the
// listeners is several sets, in order: --accept reuseport's one per worker
// slot. The master takes what it needs: fewer sets than slots are completed
// by binding more SO_REUSEPORT sockets on the same addresses (the inherited
// ones must have SO_REUSEPORT: ReusePort=yes in the .socket unit), more are
// closed.
#pragma once

#include <prefork/listener.hpp>

#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace prefork {

// A descriptor that crosses the exec beside the listeners, under its own
// name (not a protocol's, no ':'): e.g. "metrics", the --metrics socket.
struct NamedSocket {
  std::string name;
  int fd;
};

// For the master, before it binds anything: the inherited sockets as
// `sets` sets of listeners for `specs` (reuseport: one per slot, else 1),
// made close-on-exec and blocking or not as `options` says; nullopt when
// the environment passes none to this process. Unsets LISTEN_FDS,
// LISTEN_PID and LISTEN_FDNAMES in any case, so that no child inherits them.
// Throws std::runtime_error (or SystemError) on a malformed environment or a
// descriptor that does not fit its listener, naming both.
// `others`: when given and the sockets are named by protocol, descriptors
// with any other name are not matched but returned there (close-on-exec),
// for the caller to use or close (an upgrading master's "metrics").
std::optional<std::vector<std::vector<Listener>>> take_inherited_listeners(
    const std::vector<ListenerSpec>& specs, const ListenOptions& options, unsigned sets,
    std::vector<std::pair<std::string, UniqueFd>>* others = nullptr);

// In a forked child about to exec a new master (the binary upgrade): moves
// every socket of `sets` (all of them, set after set) to descriptors 3, 4,
// ... without close-on-exec, names them after their protocols, and sets
// LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID (this process) in the
// environment. The original descriptors stay close-on-exec; the Listener
// objects must not be used afterwards: the child execs or _exit()s. Throws
// SystemError naming the failing call. `others` follow the listeners, under
// their own names.
void hand_over_listeners(std::span<const std::vector<Listener>> sets,
                         std::span<const NamedSocket> others = {});

// What hand_over_listeners() and a spawned worker's launch share: moves
// `sources` to descriptors 3, 4, ... in order, without close-on-exec (each
// is first copied above that range, so that a dup2() onto 3+i never closes
// a source not yet moved). `scratch` has room for one descriptor per source.
// Async-signal-safe, for a child between fork and exec: returns the failing
// call's name with its errno in `error`, or nullptr.
// In a child about to exec: every descriptor from `first` up is marked
// close-on-exec (close_range(2), or one at a time before Linux 5.11), so
// that only what was moved below `first` crosses. Async-signal-safe.
void mark_close_on_exec_from(int first) noexcept;

const char* move_to_listen_fds(std::span<const int> sources, std::span<int> scratch,
                               int& error) noexcept;

}  // namespace prefork
